"""Continual learning: task scenarios, replay memories, metrics (torch/numpy only)."""

from avsuite.continual.metrics import backward_transfer, forgetting, summarize
from avsuite.continual.replay import (ClassBalancedBuffer, ReplayBuffer, ReplayError, ReservoirBuffer,
                                      herding_order, make_buffer)
from avsuite.continual.scenario import Scenario, ScenarioError, by_group, class_incremental
from avsuite.continual.schedule import TaskLR

__all__ = ["Scenario", "ScenarioError", "by_group", "class_incremental", "ReplayBuffer", "ReservoirBuffer",
           "ClassBalancedBuffer", "ReplayError", "herding_order", "make_buffer", "forgetting",
           "backward_transfer", "summarize", "TaskLR"]

"""A per-step LR schedule restarted at every task of a continual run (torch only).

    sched = TaskLR(opt, lambda total: (lambda step: warmup_cosine(step, total)))
    sched.restart(total=steps_of_next_task)      # at a task's first step: step 0 of a new schedule
"""

from __future__ import annotations

from typing import Any, Callable

import torch

Multiplier = Callable[[int], Callable[[int], float]]


class TaskLR(torch.optim.lr_scheduler.LambdaLR):
    """``lr = base_lr * multiplier(total)(step - start)``; ``start`` / ``total`` are plain ints in
    ``state_dict()``, so a resumed run continues the same task's schedule."""

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: Multiplier):
        self.start, self.total, self._multiplier = 0, 1, multiplier
        super().__init__(optimizer, lambda step: self._multiplier(self.total)(step - self.start))

    def restart(self, total: int) -> None:
        """The current step (``last_epoch``) becomes step 0 of a schedule of ``total`` steps."""
        self.start, self.total = self.last_epoch, max(1, total)
        self._last_lr = [base * self.lr_lambdas[0](self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_multiplier"}

"""Scenarios cover each intent exactly once; metrics on a hand-worked accuracy matrix."""

import pytest

from avsuite.continual import Scenario, ScenarioError, by_group, class_incremental, summarize
from avsuite.continual.metrics import backward_transfer, forgetting

LABELS = [f"c{i:02d}" for i in range(23)]


@pytest.mark.parametrize("first,inc,seed", [(10, 5, 0), (3, 3, 1), (23, 1, None), (1, 22, 2), (7, 4, 5)])
def test_incremental_covers_each_class_once(first, inc, seed):
    sc = class_incremental(LABELS, first=first, increment=inc, seed=seed)
    assert sorted(sc.classes) == LABELS and len(sc.classes) == len(set(sc.classes))
    assert len(sc.tasks[0]) == first
    assert all(1 <= len(t) <= inc for t in sc.tasks[1:])
    assert sc.num_tasks == 1 + -(-(23 - first) // inc)
    for t, task in enumerate(sc.tasks):
        assert all(sc.task_of(c) == t for c in task)
    assert sc.seen_classes(1) == list(sc.tasks[0] + sc.tasks[1]) if sc.num_tasks > 1 else True


def test_seeded_orders_are_deterministic_and_differ():
    a = class_incremental(LABELS, first=5, increment=5, seed=1)
    assert a == class_incremental(LABELS, first=5, increment=5, seed=1)
    assert a.classes != class_incremental(LABELS, first=5, increment=5, seed=2).classes
    assert class_incremental(LABELS, first=5, increment=5, seed=None).classes == LABELS


def test_by_group_makes_one_task_per_skill():
    groups = {"w.a": "weather", "w.b": "weather", "v.a": "volume", "d.a": "datetime"}
    sc = by_group(groups, groups)
    assert sc.tasks == (("d.a",), ("v.a",), ("w.a", "w.b"))
    sc2 = by_group(groups, groups, group_order=["weather", "volume", "datetime"])
    assert sc2.tasks[0] == ("w.a", "w.b")
    with pytest.raises(ScenarioError, match="no group"):
        by_group(["x"], {})
    with pytest.raises(ScenarioError, match="empty task"):
        by_group(groups, groups, group_order=["weather", "volume", "datetime", "alerts"])


def test_bad_scenarios_raise_clear_errors():
    with pytest.raises(ScenarioError, match="empty"):
        Scenario((("a",), ()))
    with pytest.raises(ScenarioError, match="task 0 and task 1"):
        Scenario((("a",), ("a",)))
    with pytest.raises(ScenarioError, match="empty task"):
        class_incremental(LABELS, first=5, increment=0)
    with pytest.raises(ScenarioError, match="only 23"):
        class_incremental(LABELS, first=30, increment=1)
    with pytest.raises(ScenarioError, match="missing"):
        class_incremental(LABELS, first=2, increment=2, order=LABELS[:-1])
    sc = class_incremental(LABELS, first=5, increment=5)
    with pytest.raises(ScenarioError, match="not in the scenario: 'zzz'"):
        sc.check_labels(["c00", "zzz"])
    assert Scenario.from_dict(sc.to_dict()) == sc


def test_metrics_on_hand_worked_matrix():
    # 3 tasks. R[i][j]: accuracy on task j after task i.
    R = [[0.9],
         [0.6, 0.8],
         [0.5, 0.4, 0.7]]
    seen = [0.9, 0.7, 0.55]
    # forgetting: task0 max(0.9, 0.6) - 0.5 = 0.4 ; task1 max(0.8) - 0.4 = 0.4 -> 0.4
    assert forgetting(R) == pytest.approx(0.4)
    # bwt: (0.5 - 0.9 + 0.4 - 0.8) / 2 = -0.4
    assert backward_transfer(R) == pytest.approx(-0.4)
    m = summarize(R, seen)
    assert m["avg_acc"] == pytest.approx((0.9 + 0.7 + 0.55) / 3)
    assert m["last_acc"] == pytest.approx(0.55)
    # forgetting uses the best earlier accuracy, not the first one
    R2 = [[0.5], [0.9, 0.8], [0.6, 0.7, 0.7]]
    assert forgetting(R2) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.7)) / 2)
    assert backward_transfer(R2) == pytest.approx(((0.6 - 0.5) + (0.7 - 0.8)) / 2)
    assert summarize([[0.3]], [0.3])["forgetting"] == 0.0
    with pytest.raises(ValueError):
        summarize([[0.3], [0.2]], [0.3, 0.2])


def test_compare_runs_table_and_plot(tmp_path):
    import json

    from avsuite.viz import compare_runs

    for name, accs in {"finetune": [0.8, 0.4], "joint": [0.8, 0.7]}.items():
        (tmp_path / name).mkdir()
        R = [[accs[0]], [accs[1] - 0.1, accs[1] + 0.1]]
        m = {**summarize(R, accs), **{f"acc_after_task_{t}": a for t, a in enumerate(accs)}}
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    table = compare_runs({n: tmp_path / n for n in ("finetune", "joint")}, tmp_path / "acc.png")
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| finetune | 60.0 | 40.0 | 50.0 | -50.0 | 80.0 / 40.0 |")
    assert (tmp_path / "acc.png").stat().st_size > 1000

import matplotlib.pyplot as plt
import pytest
import torch

from avsuite import viz

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png(tmp_path):
    paths = [
        viz.plot_loss_curve([(i, 1.0 / (i + 1)) for i in range(30)], tmp_path / "a" / "loss.png"),
        viz.plot_confusion(torch.tensor([[3, 1], [0, 4]]), ["dog", "cat"], tmp_path / "cm.png"),
        viz.plot_similarity(torch.randn(5, 7), list("abcde"), list("ABCDEFG"), tmp_path / "sim.png"),
        viz.plot_accuracy_curves({"replay": [0.9, 0.6], "joint": [0.9, 0.85]}, tmp_path / "acc.png",
                                 classes_per_task=[4, 3]),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG
    assert viz.plot_loss_curve([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert plt.get_fignums() == []          # every figure is closed


def test_a_failing_plot_closes_its_figure_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError):
        with viz.figure(tmp_path / "x.png", (2, 2)):
            raise ValueError("boom")
    assert plt.get_fignums() == [] and not (tmp_path / "x.png").exists()

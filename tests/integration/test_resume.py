"""Resume equals uninterrupted, through Lightning: a run stopped after k steps and resumed from
``last.ckpt`` sees exactly the batches (ids and crops) of an uninterrupted run, and ends with the
same weights. Exercises AudioDataModule + build_trainer + the stateful fairseq2 pipeline."""

import numpy as np
import pytest
import soundfile as sf
import torch
import lightning as L

from avsuite.audio.frontend import AudioFrontend, FrontendConfig
from avsuite.data.batches import collate_audio_text
from avsuite.data.datamodule import AudioDataModule
from avsuite.data.pipeline import DataConfig
from avsuite.recipes.common import OptimConfig, TrainerConfig, adamw_with_schedule, build_trainer


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fe = AudioFrontend(FrontendConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=16, log="log"))
        self.lin = torch.nn.Linear(16, 1)
        self.seen: list[list[str]] = []
        self.sums: list[float] = []

    def training_step(self, batch, idx):
        self.seen.append(list(batch.ids))
        self.sums.append(float(batch.audio.sum()))
        feats, n = self.fe(batch.audio, batch.lengths)
        return self.lin(feats.mean(-1)).pow(2).mean()

    def configure_optimizers(self):
        return adamw_with_schedule(self.parameters(), OptimConfig(lr=1e-2, warmup_steps=2), total_steps=7)


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(1)
    out = []
    for i in range(22):
        n = int(rng.integers(3000, 9000))
        sf.write(d / f"{i}.wav", (0.2 * rng.standard_normal(n)).astype(np.float32), 8000)
        out.append({"id": f"c{i:02d}", "audio": str(d / f"{i}.wav"), "captions": ["x"]})
    return out


def fit(rows, out, max_steps, resume, num_workers=0):
    dcfg = DataConfig(sample_rate=8000, batch_size=4, crop_seconds=0.5, seed=5, num_workers=num_workers)
    tcfg = TrainerConfig(max_steps=max_steps, accelerator="cpu", checkpoint_every_n_steps=1, progress_bar=False,
                         log_every_n_steps=1)
    model = Tiny()
    trainer = build_trainer(tcfg, out, enable_validation=False)
    trainer.fit(model, datamodule=AudioDataModule(dcfg, collate_audio_text, train=rows),
                ckpt_path=str(out / "last.ckpt") if resume else None)
    return model


@pytest.mark.parametrize("stop,workers", [(3, 0), (5, 0), (6, 0)])   # mid-epoch (5 full batches + 1
def test_resume_equals_uninterrupted(rows, tmp_path, stop, workers):          # partial per epoch), the boundary;
    full = fit(rows, tmp_path / "full", 9, resume=False)                        # workers: interrupted run decodes
    first = fit(rows, tmp_path / "part", stop, resume=False, num_workers=workers)  # in worker processes
    assert (tmp_path / "part" / "last.ckpt").is_file()
    second = fit(rows, tmp_path / "part", 9, resume=True, num_workers=workers)
    assert first.seen + second.seen == full.seen
    assert first.sums + second.sums == full.sums
    for a, b in zip(second.state_dict().values(), full.state_dict().values()):
        torch.testing.assert_close(a, b)

"""Per-file inference helpers: one result per file, in order; bad files become error entries."""

import numpy as np
import soundfile as sf
import torch

from avsuite.audio.frontend import kaldi_fbank
from avsuite.audio.io import load_audio
from avsuite.inference.intents import predict_intents
from avsuite.inference.zeroshot import map_files
from avsuite.models.intent import IntentModel, IntentModelConfig


def files(tmp_path, tone):
    good = tmp_path / "good.wav"
    sf.write(good, tone(300, 1.0, 16000), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    return [good, bad, tmp_path / "missing.wav", good]


def test_map_files_keeps_order_and_reports_errors(tmp_path, tone):
    out = map_files(files(tmp_path, tone), 16000, lambda w: {"n": int(w.numel())})
    assert [("error" in r) for r in out] == [False, True, True, False]
    assert out[0]["n"] == out[3]["n"] == 16000 and out[2]["file"].endswith("missing.wav")


def test_predict_intents_ranks_named_classes(tmp_path, tone):
    torch.manual_seed(0)
    classes = ["weather.current", "volume.up", "alarm.set"]
    model = IntentModel(IntentModelConfig(preset="tiny", num_classes=3, classes=classes), kaldi_fbank(n_mels=40)).eval()
    out = predict_intents(model, files(tmp_path, tone), top_k=2)
    assert len(out) == 4 and "error" in out[1] and "error" in out[2]
    assert out[0] == out[3] and len(out[0]["labels"]) == 2 and set(out[0]["labels"]) <= set(classes)
    with torch.no_grad():
        wave, _ = load_audio(tmp_path / "good.wav", 16000)      # what the function sees (16-bit PCM)
        probs = model(wave[None]).softmax(-1)[0]
    assert out[0]["labels"][0] == classes[int(probs.argmax())]
    assert np.isclose(out[0]["scores"][0], float(probs.max()), atol=1e-5)

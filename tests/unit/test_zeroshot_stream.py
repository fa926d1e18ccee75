"""Streamed zero-shot of long files (``classify_long``) and the no-CUDA path of tools/bench/gpu.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.io import load_audio
from avsuite.eval.zeroshot import DEFAULT_TEMPLATES, class_embeddings, embed_waves
from avsuite.inference.zeroshot import classify_long
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["dog", "rain", "trumpet"]


def test_classify_long_streams_and_equals_whole_file_windows(tmp_path):
    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=1.0), tiny_frontend()).eval()
    sr = 22050
    t = np.arange(int(7.5 * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * (300 + 40 * t) * t)).astype(np.float32)
    wave[int(1.5 * sr):int(3.5 * sr)] = 0.0                             # window 2 silent: skipped
    sf.write(tmp_path / "long.wav", wave, sr)
    out = list(classify_long(model, LABELS, tmp_path / "long.wav", windows_per_batch=3, top_k=3))
    assert [r["final"] for r in out] == [False] * (len(out) - 1) + [True]
    assert out[0]["windows"] == 1 and out[-1]["windows"] == 7          # 8 windows (last 0.5 s), 1 silent
    assert out[-1]["seconds"] == 7.5
    whole, _ = load_audio(tmp_path / "long.wav", model.sample_rate)
    wins = [w for i, w in enumerate(whole.split(model.sample_rate)) if i != 2]
    with torch.no_grad():
        fused = torch.nn.functional.normalize(embed_waves(model, wins, 8).sum(0), dim=-1)
        probs = torch.softmax(model.logit_scale.exp() * fused @ class_embeddings(model, LABELS, DEFAULT_TEMPLATES).T, -1)
    p, idx = probs.topk(3)
    assert out[-1]["labels"] == [LABELS[i] for i in idx.tolist()]
    assert np.allclose(out[-1]["scores"], p.tolist(), atol=1e-3)       # windows read alone vs cut from the whole


def test_classify_long_bad_file_is_one_error(tmp_path):
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=1.0), tiny_frontend()).eval()
    sf.write(tmp_path / "silent.wav", np.zeros(16000 * 3, np.float32), 16000)
    (out,) = list(classify_long(model, LABELS, tmp_path / "silent.wav"))
    assert out["final"] and "error" in out


def test_cli_window_seconds_streams_each_file_and_prints_interim_json(tmp_path, capsys):
    from avsuite.checkpoint import save_model_dir
    from avsuite.cli import main

    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=1.0), tiny_frontend()).eval()
    save_model_dir(tmp_path / "m", model.state_dict(), model.export_config())
    sr = 16000
    t = np.arange(int(4.5 * sr)) / sr
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * (300 + 60 * t) * t)).astype(np.float32), sr)
    sf.write(tmp_path / "silent.wav", np.zeros(sr * 2, np.float32), sr)
    args = ["zeroshot", "--model", str(tmp_path / "m"), "--labels", ",".join(LABELS), "--top-k", "2",
            "--window-seconds", "1", "--batch-size", "2"]
    assert main([*args, "--json", str(tmp_path / "long.wav"), str(tmp_path / "silent.wav")]) == 1   # silent: error
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expect = list(classify_long(model, LABELS, tmp_path / "long.wav", window_seconds=1.0, windows_per_batch=2,
                                top_k=2))
    assert [r["windows"] for r in lines[:-1]] == [r["windows"] for r in expect] == [1, 3, 5, 5]
    assert [r["final"] for r in lines] == [False, False, False, True, True]
    assert lines[3]["labels"] == expect[-1]["labels"] and np.allclose(lines[3]["scores"], expect[-1]["scores"])
    assert "error" in lines[4] and lines[4]["file"].endswith("silent.wav")
    assert main([*args, str(tmp_path / "long.wav")]) == 0                 # text mode: the final line only
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(str(tmp_path / "long.wav") + ": " + expect[-1]["labels"][0])
    assert main([*args[:-2], "--window-seconds", "0", str(tmp_path / "long.wav")]) == 2


def test_gpu_bench_without_cuda_prints_one_json_line():
    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, str(ROOT / "tools/bench/gpu.py"), "--quick"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["cuda"] is False and "load_avg" in res


@pytest.mark.slow
@pytest.mark.parametrize("bench, keys", [
    ("zeroshot.py", {"ours_b1_clips_per_s", "ours_b32_clips_per_s", "naive_clips_per_s", "stream_first_result_s",
                     "whole_first_result_s", "load_avg"}),
    ("clap_train.py", {"ours_samples_per_s", "plain_loop_samples_per_s", "ratio", "data_starvation", "load_avg"}),
    ("lipsync.py", {"ours_frames_per_s", "naive_frames_per_s", "ratio_vs_naive", "cpu_ratio_vs_naive",
                    "max_abs_diff_vs_naive", "ours_unet_s", "load_avg"}),
])
def test_bench_quick_prints_one_json_line(bench, keys):
    proc = subprocess.run([sys.executable, str(ROOT / "tools/bench" / bench), "--quick"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert keys <= set(res)

"""Training throughput of CLAP on this CPU: samples/s of the tiny and base presets.

    python tools/bench/clap_train.py [--quick]

tiny = the quickstart model (tiny CNN14 + frozen MiniLM, 3 s crops, batch 32); base = HTS-AT base
with feature fusion on 10 s windows at 48 kHz + fine-tuned MiniLM (measured briefly: a couple of
steps at batch 4). Synthetic audio, random captions; forward + backward + AdamW step. Ends with ONE
JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from avsuite.audio.frontend import laion_clap
from avsuite.losses import clap_loss
from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend


def measure(model: ClapModel, batch: int, seconds: float, steps: int, warmup: int = 1) -> float:
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    wave = torch.randn(batch, int(seconds * model.sample_rate)) * 0.1
    caps = [f"a recording of sound number {i}" for i in range(batch)]
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        out = clap_loss(model.encode_audio(wave), model.encode_text(caps), model.logit_scale.exp())
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        model.clamp_logit_scale()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import dataclasses

    fe = dataclasses.replace(tiny_frontend(), hop_length=320)
    tiny = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="minilm", freeze_text=True, embed_dim=384,
                                     text_projection="identity", max_seconds=3.0), fe)
    res = {"tiny_samples_per_s": measure(tiny, 32, 3.0, 2 if a.quick else 6),
           "tiny_params_trainable_M": sum(p.numel() for p in tiny.parameters() if p.requires_grad) / 1e6}
    del tiny
    base = ClapModel(ClapModelConfig(audio="htsat_base", text="minilm", freeze_text=False, embed_dim=512,
                                     max_seconds=10.0, fusion=True), laion_clap())
    res["base_samples_per_s"] = measure(base, 4 if a.quick else 8, 10.0, 1 if a.quick else 2)
    res["base_params_M"] = sum(p.numel() for p in base.parameters()) / 1e6
    res["threads"] = a.threads
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()

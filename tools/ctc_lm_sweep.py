"""Choose ``beam_lm`` decoding settings of a pre-trained ``ctc_ot`` model on a validation manifest.

The CTC posteriors of every row are computed once, then each (order, weight, bonus) setting is
decoded; one JSON line per setting (WER/CER), the greedy line first, the best setting last.
Run it on validation rows only (a manifest without splits, or with a ``valid`` split).

    python tools/ctc_lm_sweep.py --model runs/tts/pre/model --data data/speech/manifest.jsonl --split valid \\
        --orders 5,7 --weights 0.3,0.5,0.8 --bonuses 0,1,2 --beam 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def posteriors(model_dir: Path, data: Path, split: str | None) -> tuple[object, list[tuple[torch.Tensor, str]]]:
    """``[(log_probs (T, V), reference)]`` of the rows of ``split`` (all rows when the manifest has none)."""
    from avsuite.checkpoint import read_model_config
    from avsuite.data.pipeline import Reader
    from avsuite.data.sampling import ShuffledBatches
    from avsuite.models.registry import load_model
    from avsuite.recipes.ctc_ot import Config, ModelConfig, TaskConfig, speech_loader
    from avsuite.recipes.ctc_ot_data import collate, split_rows
    from avsuite.audio.frontend import FrontendConfig

    model = load_model(model_dir).eval()
    mconf = read_model_config(model_dir)
    if mconf["stage"] != "pretrain":
        raise SystemExit("ctc_lm_sweep: a pre-trained (CTC) model dir is needed")
    cfg = Config(frontend=FrontendConfig(**mconf["frontend"]), task=TaskConfig(stage="pretrain", on_oov="unk"),
                 model=ModelConfig(max_frames=mconf["arch"]["max_frames"]))
    rows, idx = split_rows(data, split)
    if not idx:
        rows, idx = split_rows(data, None)
    sampler = ShuffledBatches(shuffle=False, bucket_by_length=True, include=idx)
    reader = Reader(rows, cfg.data, train=False, collate=collate,
                    load=speech_loader(cfg, model.tokenizer, model.tokenizer, check_ctc=False), sampler=sampler)
    out = []
    with torch.no_grad():
        for batch in reader:
            enc = model.speech(batch["audio"], batch["lengths"])
            lp = enc["ctc_logits"].log_softmax(-1)
            out += [(lp[i, :n].clone(), ref) for i, (n, ref) in enumerate(zip(enc["lengths"].tolist(), batch["refs"]))]
    return model, out


def main() -> None:
    from avsuite.eval.asr import ctc_greedy
    from avsuite.eval.ctc_lm import LM_TEXT, CharNgramLM, prefix_beam_search, read_lm_text
    from avsuite.eval.speech_metrics import all_metrics

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="valid")
    p.add_argument("--lm-text", type=Path, help="default: MODEL/lm_text.txt")
    p.add_argument("--orders", default="6")
    p.add_argument("--weights", default="0.5")
    p.add_argument("--bonuses", default="0")
    p.add_argument("--beam", type=int, default=8)
    p.add_argument("--every", type=int, default=1, help="decode every k-th row only (a faster, coarser sweep)")
    a = p.parse_args()
    t0 = time.time()
    model, items = posteriors(a.model, a.data, a.split)
    items = items[::a.every]
    symbols, refs = model.tokenizer.symbols, [r for _, r in items]
    greedy = [model.tokenizer.decode(ctc_greedy(lp[None], torch.tensor([len(lp)]))[0]) for lp, _ in items]
    m = all_metrics(greedy, refs)
    print(json.dumps({"method": "greedy", "n": len(items), "wer": round(m["wer"], 2), "cer": round(m["cer"], 2)}),
          flush=True)
    texts = read_lm_text(a.lm_text or a.model / LM_TEXT)
    best = None
    for order in [int(x) for x in a.orders.split(",")]:
        lm = CharNgramLM(texts, order=order)
        for w in [float(x) for x in a.weights.split(",")]:
            for b in [float(x) for x in a.bonuses.split(",")]:
                hyps = [model.tokenizer.decode(prefix_beam_search(lp, symbols, lm, beam=a.beam, lm_weight=w, bonus=b))
                        for lp, _ in items]
                m = all_metrics(hyps, refs)
                line = {"method": "beam_lm", "lm_order": order, "lm_weight": w, "lm_bonus": b, "beam": a.beam,
                        "wer": round(m["wer"], 2), "cer": round(m["cer"], 2)}
                print(json.dumps(line), flush=True)
                if best is None or line["wer"] < best["wer"]:
                    best = line
    print(json.dumps({"best": best, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()

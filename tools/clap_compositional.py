"""CompA-order / attribute / TeminAL-temporal 2x2 scores of CLAP model dirs on class-disjoint splits.

    # the quickstart's class-disjoint split of a sounds manifest (train / seen_heldout / unseen)
    python tools/clap_compositional.py split --manifest data/sounds/manifest.jsonl --out runs/c12/split
    # Winoground-style 2x2 sets built from a manifest's clips, scored for each model dir
    python tools/clap_compositional.py score --data runs/c12/split/unseen.jsonl --n 128 runs/clap/model ...

``score`` prints one JSON object per model (``{"model", "<kind>_text_score", ..., "<kind>_group_score"}``)
and, with ``--out FILE``, writes them all as a JSON list. Settings are chosen on ``seen_heldout``
(held-out clips of the training classes); ``unseen`` (classes never trained on) is the test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def split(manifest: Path, out: Path, seed: int) -> None:
    from avsuite.data.manifest import read_manifest
    from avsuite.recipes.clap import split_corpus

    out.mkdir(parents=True, exist_ok=True)
    paths = split_corpus(read_manifest(manifest), out, seed=seed)
    counts = {name: sum(1 for _ in open(p)) for name, p in paths.items()}
    print(json.dumps({"split_seed": seed, **{f"{k}_clips": v for k, v in counts.items()}}))


def score(models: list[Path], data: Path, n: int, seed: int, clip_seconds: float, out: Path | None) -> None:
    from avsuite.data.manifest import read_manifest
    from avsuite.eval.benchmarks import compositional_eval
    from avsuite.models.registry import load_model

    rows = read_manifest(data)
    results = []
    for path in models:
        model = load_model(path).eval()
        metrics = compositional_eval(model, rows, n=n, seed=seed, clip_seconds=clip_seconds)
        results.append({"model": str(path), **{k: round(v, 4) for k, v in metrics.items()}})
        print(json.dumps(results[-1]), flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="class-disjoint split of a sounds manifest (the quickstart's)")
    sp.add_argument("--manifest", type=Path, required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--seed", type=int, default=0)
    sc = sub.add_parser("score", help="2x2 order / attribute / temporal scores of model dirs")
    sc.add_argument("models", type=Path, nargs="+")
    sc.add_argument("--data", type=Path, required=True, help="manifest whose clips build the sets")
    sc.add_argument("--n", type=int, default=128, help="sets per kind (capped by distinct clip pairs)")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--clip-seconds", type=float, default=1.5)
    sc.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.cmd == "split":
        split(args.manifest, args.out, args.seed)
    else:
        score(args.models, args.data, args.n, args.seed, args.clip_seconds, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

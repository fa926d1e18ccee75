"""``avsuite <command>``: parse arguments, load the config, call ONE function. No logic here.

Exit codes: 0 ok, 1 the job ran but reported failures (e.g. some files could not be read),
2 bad input (config, manifest, model dir, arguments), 3 command not available in this version.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Callable

EXAMPLES = """examples:
  avsuite quickstart --out runs/quickstart
  avsuite data build sounds --out data/sounds
  avsuite train clap --config configs/clap/tiny.yaml optim.lr=3e-4 --out runs/clap
  avsuite train clap --config configs/clap/tiny.yaml --dump-config
  avsuite eval clap --model runs/clap/model --data data/sounds/manifest.jsonl --out runs/clap-eval
  avsuite zeroshot --model runs/clap/model --labels "dog,cat,rain" clip1.wav clip2.ogg --json
  avsuite retrieve --model runs/clap/model --data data/sounds/manifest.jsonl --query "a dog barking"
  avsuite lipsync --model runs/lipsync/model --video face.mp4 --audio speech.wav --out out.mp4
  avsuite demo clap --model runs/clap/model
  avsuite demo lipsync --model runs/lipsync/model --syncnet runs/syncnet/model
"""


def _call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Import ``module:function`` lazily (keeps ``avsuite --help`` fast) and call it."""
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(*args, **kwargs)


def cmd_train(a: argparse.Namespace) -> int:
    from avsuite.config import dump_config, load_config
    from avsuite.recipes import get_recipe

    recipe = get_recipe(a.recipe)
    cfg = load_config(recipe.Config, a.config, a.overrides)
    if a.dump_config:
        print(dump_config(cfg), end="")
        return 0
    if a.out is None:
        raise SystemExit("error: --out DIR is required (unless --dump-config)")
    metrics = recipe.train(cfg, Path(a.out), resume=a.resume)
    _print_metrics(metrics, Path(a.out) / "metrics.json")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from avsuite.recipes import get_recipe

    extra = {k: v for k, v in (("syncnet", a.syncnet and Path(a.syncnet)), ("clips", a.clips), ("steps", a.steps),
                               ("split", a.split), ("ceiling", a.ceiling)) if v}   # lipsync only
    if a.overrides:                                  # ctc_ot: decode.<key>=value
        extra["overrides"] = a.overrides
    metrics = get_recipe(a.recipe).evaluate(Path(a.model), Path(a.data), Path(a.out), **extra)
    _print_metrics(metrics, Path(a.out) / "metrics.json")
    return 0


def _print_metrics(metrics: dict[str, Any], path: Path) -> None:
    for key, value in sorted(metrics.items()):
        print(f"{key:>24s}  {value:.4f}" if isinstance(value, float) else f"{key:>24s}  {value}")
    print(f"wrote {path}")


def cmd_zeroshot(a: argparse.Namespace) -> int:
    labels = [x.strip() for x in a.labels.split(",") if x.strip()]
    return _call("avsuite.inference.zeroshot:run_zeroshot", Path(a.model), labels, [Path(f) for f in a.files],
                 as_json=a.json, top_k=a.top_k, batch_size=a.batch_size, window_seconds=a.window_seconds)


def cmd_retrieve(a: argparse.Namespace) -> int:
    return _call("avsuite.inference.retrieve:run_retrieve", Path(a.model), Path(a.data), a.query,
                 top_k=a.top_k, as_json=a.json)


def cmd_lipsync(a: argparse.Namespace) -> int:
    return _call("avsuite.inference.lipsync:run_lipsync", Path(a.model), Path(a.video), Path(a.audio), Path(a.out))


def cmd_demo(a: argparse.Namespace) -> int:
    return _call("avsuite.demos:launch", a.name, Path(a.model), port=a.port,
                 manifests=[Path(m) for m in a.manifest or ()], max_file_mb=a.max_file_mb,
                 syncnet=Path(a.syncnet) if a.syncnet else None)


def cmd_data_build(a: argparse.Namespace) -> int:
    from avsuite.config import parse_override
    from avsuite.data.corpora import build

    options = {".".join(k): v for k, v in (parse_override(o) for o in a.options)}
    path = build(a.corpus, Path(a.out), force=a.force, **options)
    print(f"wrote {path}")
    return 0


def cmd_quickstart(a: argparse.Namespace) -> int:
    metrics = _call("avsuite.recipes.clap:quickstart", Path(a.out), validation=a.validation,
                    overrides=tuple(a.overrides))
    _print_metrics(metrics, Path(a.out) / "metrics.json")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is <= 65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from avsuite.recipes import RECIPES

    p = argparse.ArgumentParser(prog="avsuite", description="Contrastive audio learning: train, evaluate, use.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("train", cmd_train, "train a recipe; writes OUT/{config.yaml,model/,last.ckpt,metrics.json}")
    sp.add_argument("recipe", choices=list(RECIPES))
    sp.add_argument("--config", help="YAML config (see configs/<recipe>/); defaults when omitted")
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=3e-4")
    sp.add_argument("--out", help="output directory")
    sp.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    sp.add_argument("--dump-config", action="store_true", help="print the resolved config and exit")

    sp = add("eval", cmd_eval, "evaluate a trained model on a manifest; writes OUT/metrics.json")
    sp.add_argument("recipe", choices=list(RECIPES))
    sp.add_argument("--model", required=True, help="model dir (OUT/model of a training run)")
    sp.add_argument("--data", required=True, help="JSONL manifest")
    sp.add_argument("--out", required=True)
    sp.add_argument("--syncnet", help="lipsync: an evaluator SyncNet model dir -> the LSE table (OUT/table.md)")
    sp.add_argument("--clips", type=_positive_int, help="lipsync --syncnet: score the first N held-out clips")
    sp.add_argument("--steps", type=_positive_int, help="lipsync --syncnet: DDIM steps (default: the model's)")
    sp.add_argument("overrides", nargs="*", metavar="key=value",
                    help="ctc_ot: decoding overrides, e.g. decode.method=beam_lm decode.lm_weight=0.8")
    sp.add_argument("--split", choices=("train", "valid", "test"),
                    help="lipsync: score these rows (default: test, else valid); choose settings on valid")
    sp.add_argument("--ceiling", action="store_true",
                    help="lipsync --syncnet: only the rows without the UNet (gt / VAE ceiling / mismatched)")

    sp = add("zeroshot", cmd_zeroshot, "zero-shot classify audio files against text labels")
    sp.add_argument("--model", required=True)
    sp.add_argument("--labels", required=True, help='comma-separated class names, e.g. "dog,cat,rain"')
    sp.add_argument("--json", action="store_true", help="one JSON object per file per line")
    sp.add_argument("--top-k", type=_positive_int, default=3)
    sp.add_argument("--batch-size", type=_positive_int, default=16)
    sp.add_argument("--window-seconds", type=float, default=None,
                    help="stream each file in windows of S seconds, fused (long recordings; with --json interim "
                         "results print as they come)")
    sp.add_argument("files", nargs="+", metavar="FILE")

    sp = add("retrieve", cmd_retrieve, "rank a manifest's clips for a text query (or an audio file)")
    sp.add_argument("--model", required=True)
    sp.add_argument("--data", required=True, help="JSONL manifest of the clips to search")
    sp.add_argument("--query", required=True, help="text, or a path to an audio file")
    sp.add_argument("--top-k", type=_positive_int, default=10)
    sp.add_argument("--json", action="store_true")

    sp = add("lipsync", cmd_lipsync, "generate a lip-synced video from a face video and an audio track")
    sp.add_argument("--model", required=True)
    sp.add_argument("--video", required=True)
    sp.add_argument("--audio", required=True)
    sp.add_argument("--out", required=True)

    sp = add("demo", cmd_demo, "start a Gradio demo on 127.0.0.1")
    sp.add_argument("name", help="demo name, e.g. clap")
    sp.add_argument("--model", required=True)
    sp.add_argument("--port", type=_port, default=7860)
    sp.add_argument("--manifest", action="append", metavar="FILE",
                    help="a JSONL manifest the page may search (repeatable); the page opens no other path")
    sp.add_argument("--max-file-mb", type=_positive_int, default=50, help="largest upload accepted (MB)")
    sp.add_argument("--syncnet", metavar="DIR", help="an evaluator SyncNet model dir (demo lipsync: LSE-C / LSE-D)")

    data = sub.add_parser("data", help="build datasets", description="build datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    sp = dsub.add_parser("build", help="build a corpus manifest from installed packages",
                         description="build a corpus manifest from installed packages (offline)")
    sp.set_defaults(func=cmd_data_build)
    sp.add_argument("corpus", help="corpus name (sounds, asterisk, intents, speech, av)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--force", action="store_true", help="rebuild even if cached")
    sp.add_argument("options", nargs="*", metavar="key=value", help="builder options, e.g. gm_renders=8")

    sp = add("quickstart", cmd_quickstart, "the main job: build the sound corpus, train CLAP, report zero-shot")
    sp.add_argument("--out", default="runs/quickstart")
    sp.add_argument("--validation", action="store_true",
                    help="the run settings are chosen on: another class split, held-out source not scored")
    sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.eq_db=12")
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    from avsuite.audio.io import AudioDecodeError
    from avsuite.checkpoint import CheckpointError
    from avsuite.config import ConfigError
    from avsuite.data.manifest import ManifestError

    return (ConfigError, ManifestError, CheckpointError, AudioDecodeError, FileNotFoundError, KeyError, ValueError,
            TypeError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Like ``parse_args``, but ``key=value`` overrides may come anywhere (argparse alone stops
    collecting a positional list at the first option: ``--config X a=1 --out D b=2``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    bucket = "overrides" if hasattr(args, "overrides") else "options" if hasattr(args, "options") else None
    stray = [e for e in extra if bucket is None or e.startswith("-") or "=" not in e]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if bucket:
        setattr(args, bucket, [*getattr(args, bucket), *extra])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from avsuite.recipes import RecipeUnavailable

    from avsuite.errors import TrainingInterrupted

    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as exc:
        print(f"avsuite: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RecipeUnavailable, ModuleNotFoundError) as exc:
        if isinstance(exc, ModuleNotFoundError) and not (exc.name or "").startswith("avsuite"):
            raise
        msg = str(exc) if isinstance(exc, RecipeUnavailable) else f"'{args.command}' is not yet available in this version"
        print(f"avsuite: {msg}", file=sys.stderr)
        return 3
    except _known_errors() as exc:
        if args.verbose:
            raise
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"avsuite: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avsuite: interrupted (resume training with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

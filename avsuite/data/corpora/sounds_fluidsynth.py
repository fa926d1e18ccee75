"""General MIDI instruments rendered with FluidSynth and the FluidR3 GM soundfont (Debian).

For each of the 128 GM programs (and each percussion label of :data:`gm_table.DRUMS`)
``renders`` notes are laid one after another in a standard MIDI file (a dozen instruments per
file), rendered by one ``fluidsynth -ni`` call at 32 kHz, and cut into one clip per note. Each
note's pitch (low / middle / high for that instrument), velocity (soft / medium / loud) and length
(short / long) come from a per-instrument shuffle seeded by the instrument's key, so the set is the
same on every build. Clip lengths are fixed by the design (note length + release tail), never measured, so
durations are exactly reproducible; one gain per instrument scales its loudest render to -1 dBFS,
so soft and loud renders keep their difference.

    "a trumpet playing a high note softly", "a long, low note on a cello"
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from avsuite.data.corpora import gm_table
from avsuite.data.corpora.common import ClipSpec, stable_hash, with_article

PACKAGE = "fluid-soundfont-gm"
LICENSE = "MIT"
SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 32000
TAIL = 1.0                       # seconds kept after note-off (release, reverb)
GAP = 1.0                        # extra silence between notes in the MIDI file
PITCHES = ("low", "middle", "high")
VELOCITIES = {"softly": 40, "at medium volume": 80, "loudly": 115}
LENGTHS = {"short": 0.4, "long": 1.5}
SFX_LENGTHS = {"short": 1.0, "long": 2.5}
DRUM_LENGTH = 0.2
PEAK = 0.89                      # -1 dBFS


@dataclass(frozen=True)
class Note:
    id: str
    note: int
    velocity: int
    seconds: float
    captions: tuple[str, ...]
    design: tuple[str, str, str]  # pitch word, velocity word, length word


@dataclass(frozen=True)
class RenderJob:
    key: str                     # "056_trumpet" / "drum_snare-drum"
    channel: int                 # 0, or 9 for percussion
    program: int
    label: str
    category: str
    notes: tuple[Note, ...]


def fluidsynth_path() -> str | None:
    return shutil.which("fluidsynth")


def available(sf2: Path = SF2) -> bool:
    return sf2.is_file() and fluidsynth_path() is not None


# -- the design -----------------------------------------------------------------------------------

def _design(key: str, n: int, choices: list) -> list:
    rng = random.Random(stable_hash(f"gm-design:{key}"))
    combos = list(choices)
    rng.shuffle(combos)
    if n > len(combos):  # more renders than distinct designs: cycle (repeats differ only by id)
        combos = (combos * (n // len(combos) + 1))
    return combos[:n]


def program_jobs(programs, renders: int) -> list[RenderJob]:
    jobs = []
    for prog in programs:
        gm_name, label, category, centre, span = gm_table.PROGRAMS[prog]
        key = f"{prog:03d}_{label.replace(' ', '-')}"
        pitched = span > 0
        pitch_words = PITCHES if pitched else ("middle",)
        lengths = LENGTHS if pitched else SFX_LENGTHS
        combos = [(p, v, ln) for p in pitch_words for v in VELOCITIES for ln in lengths]
        notes = []
        for i, (pw, vw, lw) in enumerate(_design(key, renders, combos)):
            note = centre + {"low": -span, "middle": 0, "high": span}[pw]
            secs = lengths[lw]
            notes.append(Note(f"fluidsynth/{key}/{i:02d}", note, VELOCITIES[vw], secs,
                              _captions(label, pitched, pw, vw, lw, gm_name), (pw, vw, lw)))
        jobs.append(RenderJob(key, 0, prog, label, category, tuple(notes)))
    return jobs


def drum_jobs(renders: int) -> list[RenderJob]:
    jobs = []
    for label, midi_notes in gm_table.DRUMS.items():
        key = f"drum_{label.replace(' ', '-')}"
        combos = [(n, v) for n in midi_notes for v in VELOCITIES]
        notes = []
        for i, (mn, vw) in enumerate(_design(key, renders, combos)):
            adj = {"softly": "soft", "at medium volume": "medium", "loudly": "loud"}[vw]
            caps = (f"{with_article(label)} hit {vw}", f"a single {adj} {label} hit")
            notes.append(Note(f"fluidsynth/{key}/{i:02d}", mn, VELOCITIES[vw], DRUM_LENGTH, caps, ("", vw, "")))
        jobs.append(RenderJob(key, 9, 0, label, "instrument", tuple(notes)))
    return jobs


def _captions(label: str, pitched: bool, pw: str, vw: str, lw: str, gm_name: str) -> tuple[str, ...]:
    a_label = with_article(label)
    if not pitched:
        desc = gm_table.SFX_CAPTIONS.get(label, f"the sound of {a_label}")
        adj = {"softly": "quiet", "at medium volume": "moderately loud", "loudly": "loud"}[vw]
        return desc, f"{with_article(adj)} recording of {desc}"
    pitch = {"low": "low", "middle": "medium-pitched", "high": "high"}[pw]
    return (f"{a_label} playing {with_article(pitch)} note {vw}",
            f"{with_article(lw)}, {pitch} note on {a_label}",
            f"{gm_name.lower()}: {with_article(lw)} {pitch} note played {vw}")


# -- MIDI and rendering -----------------------------------------------------------------------------

TPQ = 480            # ticks per quarter note; with 120 bpm one tick is 1/960 s
TICKS_PER_S = 960


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def write_smf(path: Path, events: list[tuple[float, bytes]]) -> None:
    """A type-0 standard MIDI file (120 bpm) from ``(seconds, midi message)`` events.

    At equal times note-offs come first, then program changes, then note-ons.
    """
    rank = {0x80: 0, 0xC0: 1, 0x90: 2}
    timed = sorted(((round(t * TICKS_PER_S), msg) for t, msg in events), key=lambda e: (e[0], rank.get(e[1][0] & 0xF0, 1)))
    end = timed[-1][0] if timed else 0
    timed = [(0, b"\xff\x51\x03" + (500000).to_bytes(3, "big"))] + timed
    timed.append((end + round((TAIL + GAP) * TICKS_PER_S), b"\xff\x2f\x00"))
    track, last = bytearray(), 0
    for t, data in timed:
        track += _vlq(t - last) + data
        last = t
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ) + b"MTrk" + struct.pack(">I", len(track)) + track)


def timeline(jobs: list[RenderJob]) -> tuple[list[tuple[float, bytes]], list[list[float]]]:
    """Lay the jobs' notes one after another: MIDI events, and each note's start time per job."""
    events: list[tuple[float, bytes]] = []
    starts: list[list[float]] = []
    t = 0.0
    for job in jobs:
        events.append((t, bytes([0xC0 | job.channel, job.program])))
        job_starts = []
        for n in job.notes:
            events.append((t, bytes([0x90 | job.channel, n.note, n.velocity])))
            events.append((t + n.seconds, bytes([0x80 | job.channel, n.note, 0])))
            job_starts.append(t)
            t += n.seconds + TAIL + GAP
        starts.append(job_starts)
    return events, starts


@dataclass(frozen=True)
class RenderBatch:
    """Several instruments rendered by one fluidsynth call (loading the 148 MB soundfont once)."""

    jobs: tuple[RenderJob, ...]
    sf2: str
    work: str


def render_batch(batch: RenderBatch) -> list[list[dict]]:
    """Render a batch; write one float wav per note; per job ``[{"id", "path"} | {"id", "error"}]``."""
    import numpy as np
    import soundfile as sf

    work = Path(batch.work)
    events, starts = timeline(list(batch.jobs))
    with tempfile.TemporaryDirectory(prefix="gm-", dir=work) as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        write_smf(mid, events)
        cmd = [fluidsynth_path() or "fluidsynth", "-ni", "-q", "-g", "1.0", "-r", str(SR), "-O", "float",
               "-T", "wav", "-F", str(wav), batch.sf2, str(mid)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if res.returncode != 0 or not wav.is_file():
            reason = ((res.stderr or res.stdout).strip().splitlines() or [f"exit {res.returncode}"])[-1]
            return [[{"id": n.id, "error": f"fluidsynth failed: {reason}"} for n in job.notes] for job in batch.jobs]
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    out = []
    for job, job_starts in zip(batch.jobs, starts):
        clips = []
        for s, n in zip(job_starts, job.notes):
            a, length = round(s * sr), round((n.seconds + TAIL) * sr)
            seg = np.zeros(length, dtype=np.float32)
            chunk = mono[a: a + length]
            seg[: len(chunk)] = chunk
            clips.append(seg)
        peak = max(float(np.abs(c).max()) for c in clips)
        gain = PEAK / peak if peak > 0 else 1.0              # one gain per instrument: keeps soft vs loud
        res_job = []
        for n, seg in zip(job.notes, clips):
            path = work / (n.id.replace("/", "__") + ".wav")
            sf.write(str(path), seg * gain, sr, subtype="FLOAT")
            res_job.append({"id": n.id, "path": str(path)})
        out.append(res_job)
    return out


#: Instruments per fluidsynth call. Fixed (not derived from the worker count) so that what precedes
#: a note in its render, and so its audio, never depends on how many workers ran.
BATCH = 12


def collect(work: Path, *, renders: int = 4, programs=None, drums: bool = True, sf2: Path = SF2,
            workers: int | None = None, progress: bool = True, summary=None) -> list[ClipSpec]:
    """Render the instruments (batches in parallel); one :class:`ClipSpec` per rendered note."""
    from avsuite.data.corpora.common import parallel_map

    programs = range(128) if programs is None else sorted(set(int(p) for p in programs))
    jobs = program_jobs(programs, renders) + (drum_jobs(renders) if drums else [])
    batches = [RenderBatch(tuple(jobs[i: i + BATCH]), str(sf2), str(work)) for i in range(0, len(jobs), BATCH)]
    per_batch = parallel_map(render_batch, batches, workers=workers, desc="fluidsynth", progress=progress,
                             unit="batch")
    results = [r for batch_res in per_batch for r in batch_res]
    specs = []
    for job, res in zip(jobs, results):
        for n, r in zip(job.notes, res):
            if "error" in r:
                if summary is not None:
                    summary.skip("fluidsynth: render failed", f"{n.id}: {r['error']}")
                continue
            midi = {"program": job.program if job.channel != 9 else None, "channel": job.channel + 1,
                    "note": n.note, "velocity": n.velocity, "seconds": n.seconds}
            specs.append(ClipSpec(id=n.id, src=r["path"], label=job.label, category=job.category,
                                  captions=list(n.captions), source=PACKAGE, license=LICENSE,
                                  origin=f"FluidR3_GM.sf2 rendered by fluidsynth: {job.key}", extra={"midi": midi}))
    return specs

"""espeak-ng speech with phoneme timings, through the C library (``libespeak-ng.so.1``) via ctypes.

    speech = synthesize("the cat sat on the mat", voice="en-us+f2", rate=160, pitch=50)
    speech.wave          # (S,) float32 in [-1, 1] at speech.sample_rate (22050 Hz)
    speech.phonemes      # ((phoneme, start_s), ...) in time order, espeak mnemonics ("k", "a", "aI", "_:")

The library is global and not re-entrant, so every call holds one process-wide lock. It is opened
with ``AUDIO_OUTPUT_SYNCHRONOUS`` and ``espeakINITIALIZE_PHONEME_EVENTS``: the synth callback gets
the samples and, for each phoneme, an event with its start in ms of audio (``audio_position``).
A missing library or voice raises :class:`EspeakError` with what to install. The library keeps
state between utterances (see :func:`run_isolated` for byte-reproducible batches).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

LIBRARY = "libespeak-ng.so.1"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_PHONEME = 7
_EVENT_END = 5
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4


class EspeakError(RuntimeError):
    """espeak-ng is missing or refused a request."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True, kw_only=True)
class Speech:
    """One synthesized utterance: ``wave`` (S,) float32 at ``sample_rate``; ``phonemes`` (name, start_s)."""

    wave: np.ndarray
    sample_rate: int
    phonemes: tuple[tuple[str, float], ...]

    @property
    def seconds(self) -> float:
        return len(self.wave) / self.sample_rate


class _Engine:
    """The loaded library, its sample rate and the buffers the callback fills (guarded by ``lock``)."""

    def __init__(self, library: str):
        try:
            self.lib = ctypes.CDLL(library)
        except OSError as exc:
            raise EspeakError(f"espeak-ng library {library!r} not found ({exc}); install the Debian package "
                              "libespeak-ng1 (bash tools/setup.sh installs espeak-ng)") from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                     _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}): is espeak-ng-data installed?")
        self.sample_rate = int(rate)
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[str, int]] = []
        self._cb = _CALLBACK(self._collect)  # kept alive as long as the engine
        lib.espeak_SetSynthCallback(self._cb)

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self.events.append((ev.id.string.decode("ascii", "replace"), int(ev.audio_position)))
            i += 1
        return 0


_LOCK = threading.Lock()
_ENGINES: dict[str, _Engine] = {}


def _engine(library: str) -> _Engine:
    if library not in _ENGINES:
        _ENGINES[library] = _Engine(library)
    return _ENGINES[library]


def available(library: str = LIBRARY) -> bool:
    """Whether the library loads (and initialises)."""
    with _LOCK:
        try:
            _engine(library)
        except EspeakError:
            return False
    return True


def synthesize(text: str, *, voice: str = "en", rate: int = 170, pitch: int = 50, pitch_range: int = 50,
               library: str = LIBRARY) -> Speech:
    """Speak ``text`` with ``voice`` (``"en-us+f2"``: language[+variant]) at ``rate`` words/min and
    ``pitch`` 0..100. Phoneme starts are in seconds from the first sample, increasing."""
    if not text.strip():
        raise ValueError("nothing to say: empty text")
    with _LOCK:
        eng = _engine(library)
        if eng.lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices` and --voices=variant)")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_VOLUME, 100)):
            eng.lib.espeak_SetParameter(param, int(value), 0)
        eng.chunks, eng.events = [], []
        data = text.encode("utf-8") + b"\0"
        err = eng.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed with error {err} for {text[:40]!r}")
        chunks, events = eng.chunks, eng.events
        eng.chunks, eng.events = [], []
        sr = eng.sample_rate
    wave = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    phonemes, last = [], 0.0
    for name, ms in events:
        t = max(last, min(ms / 1000.0, len(wave) / sr))
        phonemes.append((name, round(t, 4)))
        last = t
    return Speech(wave=wave, sample_rate=sr, phonemes=tuple(phonemes))


def run_isolated(fn, *args):
    """``fn(*args)`` in a fresh spawned process: espeak-ng carries state from one utterance to the
    next (the same call gives slightly different samples and timings depending on what was spoken
    before in the process), so a reproducible batch needs a process with no history."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


__all__ = ["EspeakError", "LIBRARY", "Speech", "available", "run_isolated", "synthesize"]

"""Segment rows (MuST-C style ``offset`` / ``duration`` into a long recording) are read with a seek:
the samples equal the slice of the whole decoded file, and only the segment (plus the resampler's
context) is read from disk, through soundfile, PyAV and the on-disk cache alike."""

import numpy as np
import pytest
import soundfile as sf
import torch

from avsuite.audio.io import AudioDecodeError, load_audio
from avsuite.audio.resample import input_span, resample
from avsuite.data.batches import collate_audio_text
from avsuite.data.cache import AudioCache
from avsuite.data.pipeline import DataConfig, Reader


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """20 minutes of 8 kHz noise (19 MB of PCM_16): a long recording in a unit test."""
    path = tmp_path_factory.mktemp("long") / "talk.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_16") as fh:
        for _ in range(20):
            fh.write((0.2 * rng.standard_normal(8000 * 60)).astype(np.float32))
    return path


@pytest.fixture
def frames_read(monkeypatch):
    """Counts the frames every ``SoundFile.read`` and every 16-bit WAV fast-path read returns."""
    from avsuite.audio import wav

    counts: list[int] = []
    real, real_fast = sf.SoundFile.read, wav.read_pcm16

    def read(self, frames=-1, *args, **kwargs):
        out = real(self, frames, *args, **kwargs)
        counts.append(len(out))
        return out

    def read_fast(*args):
        out = real_fast(*args)
        if out is not None:
            counts.append(out[0].shape[-1])
        return out

    monkeypatch.setattr(sf.SoundFile, "read", read)
    monkeypatch.setattr(wav, "read_pcm16", read_fast)
    return counts


def test_same_rate_segment_is_the_exact_slice_and_reads_only_it(long_wav, frames_read):
    wave, sr = load_audio(long_wav, 8000, segment=(600.25, 1.5))
    assert sr == 8000 and wave.shape == (12000,)
    assert frames_read == [12000]                       # 1.5 s of a 20 min file, nothing else
    start = int(600.25 * 8000)
    ref = sf.read(long_wav, dtype="float32", start=start, stop=start + 12000)[0]
    assert torch.equal(wave, torch.from_numpy(ref))


def test_resampled_segment_equals_the_slice_of_the_resampled_file(tmp_path, frames_read):
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(44100 * 20)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    full = resample(torch.from_numpy(x), 44100, 16000)
    for offset, dur in ((7.3, 2.0), (0.0, 0.5), (19.2, 3.0), (12.0, None)):
        frames_read.clear()
        wave, _ = load_audio(tmp_path / "a.wav", 16000, segment=(offset, dur))
        a = int(offset * 16000)
        ref = full[a: a + int(dur * 16000) if dur else None]
        assert wave.shape == ref.shape
        assert (wave - ref).abs().max() < 1e-5           # the same taps; float sums may differ in the last bit
        assert frames_read[0] <= (min(dur or 20, 20 - offset) * 44100) + 2000   # + kernel context and alignment (< 0.05 s)


def test_input_span_keeps_alignment_and_context():
    for orig, new in ((44100, 16000), (48000, 16000), (32000, 16000), (8000, 16000), (22254, 16000)):
        a, b, first = input_span(orig, new, 5000, 9000, 10**6)
        assert a <= 5000 * orig / new - 5 and b >= 9000 * orig / new + 5 and first * orig == a * new


def test_offset_rows_in_the_reader_seek_with_and_without_cache(long_wav, tmp_path, frames_read):
    rows = [{"id": f"seg{i}", "audio": str(long_wav), "offset": 60.0 * i + 0.5, "duration": 1.0,
             "captions": ["talk"]} for i in range(4)]
    cfg = DataConfig(sample_rate=8000, batch_size=2, max_seconds=5.0)   # filters the segment, not the file
    got = torch.cat([b.audio for b in Reader(rows, cfg, collate=collate_audio_text, train=False)])
    assert got.shape == (4, 8000) and frames_read == [8000] * 4
    for i, r in enumerate(rows):
        start = int(r["offset"] * 8000)
        assert torch.equal(got[i], torch.from_numpy(sf.read(long_wav, dtype="float32", start=start,
                                                            stop=start + 8000)[0]))
    cache = AudioCache(tmp_path / "cache", 8000)
    seg = cache.load(long_wav, segment=(120.5, 1.0), max_seconds=5.0)          # decodes once, then slices
    assert torch.equal(seg, got[2])
    assert torch.equal(cache.load(long_wav, segment=(120.5, 1.0), window=(0.25, None)), got[2][3000:5000])


def test_segment_errors_name_the_problem(long_wav):
    with pytest.raises(AudioDecodeError, match="starts after the end"):
        load_audio(long_wav, 8000, segment=(1300.0, 1.0))
    with pytest.raises(AudioDecodeError, match="too long"):
        load_audio(long_wav, 8000, segment=(10.0, 30.0), max_seconds=20.0)


@pytest.mark.parametrize("codec,ext", [("flac", "mka"), ("aac", "m4a")])
def test_pyav_segment_seeks_and_equals_the_whole_decode_slice(tmp_path, monkeypatch, codec, ext):
    """Formats libsndfile cannot read go through PyAV: a seek (with codec pre-roll) and the same
    samples as the whole decode (AAC's lapped frames included)."""
    av = pytest.importorskip("av")
    path = tmp_path / f"talk.{ext}"
    pcm = (0.2 * 32767 * np.random.default_rng(2).standard_normal(16000 * 60)).astype(np.int16)
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=16000, layout="mono")
        for k in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, k:k + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, k
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
    full, _ = load_audio(path, 16000)
    seeks = []
    real_seek = av.container.InputContainer.seek
    monkeypatch.setattr(av.container.InputContainer, "seek", lambda self, *a, **k: seeks.append(a) or real_seek(self, *a, **k))
    for offset in (0.0, 21.7, 50.0):
        seg, _ = load_audio(path, 16000, segment=(offset, 2.0))
        a = int(offset * 16000)
        assert torch.equal(seg, full[a:a + 32000])
    assert len(seeks) == 2                               # offset 0 needs none


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm16_wav_fast_path_equals_soundfile_bit_for_bit(tmp_path, monkeypatch, channels):
    from avsuite.audio import io

    x = (0.5 * np.random.default_rng(3).standard_normal((44100 * 5, channels))).clip(-1, 1).astype(np.float32)
    sf.write(tmp_path / "x.wav", x if channels > 1 else x[:, 0], 44100, subtype="PCM_16")
    cases = [{}, {"window": (1.0, 0.3)}, {"window": (1.0, None)}, {"window": (9.0, 0.5)},
             {"segment": (1.3, 2.0)}, {"segment": (4.0, None)}]
    sf_calls = []
    real_open = io._read_soundfile
    monkeypatch.setattr(io, "_read_soundfile", lambda *a: sf_calls.append(1) or real_open(*a))
    fast = [load_audio(tmp_path / "x.wav", sr, **kw)[0] for kw in cases for sr in (None, 16000)]
    assert sf_calls == []                                     # soundfile never ran
    monkeypatch.setattr(io, "_read_wav_fast", lambda *a: None)
    slow = [load_audio(tmp_path / "x.wav", sr, **kw)[0] for kw in cases for sr in (None, 16000)]
    assert len(sf_calls) == len(slow) and all(torch.equal(a, b) for a, b in zip(fast, slow))

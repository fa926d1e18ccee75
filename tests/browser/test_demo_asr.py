"""The speech (ctc_ot) demo in headless Chromium: a real Asterisk prompt in, the API's text out.

Skips until the ctc_ot model code and the public ``avsuite.transcribe_files`` are both present."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

import avsuite

from tests.browser.ui import assert_loopback_only, assert_no_traceback, by_css, open_page, upload, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def asr_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight ASR model dir (char tokenizer): the UI test needs no trained model."""
    speech = pytest.importorskip("avsuite.models.speech", reason="needs the ctc_ot models (branch ctc-ot)")
    from avsuite.models.seq2seq import build_model, model_config
    try:
        avsuite.transcribe_files
    except (AttributeError, ImportError):
        pytest.skip("needs the public avsuite.transcribe_files (ctc_ot inference)")
    import torch

    from avsuite.audio.frontend import kaldi_fbank
    from avsuite.checkpoint import save_model_dir
    from avsuite.models.text_tokenizer import CharTokenizer

    torch.manual_seed(0)
    arch = speech.preset("tiny", arch="transformer", d_model=32, n_heads=2, ffn_dim=64, speech_layers=2,
                         text_layers=1, decoder_layers=1, conv_kernel=3, dropout=0.0)
    tok = CharTokenizer.train(["please enter your pin then press the pound key"])
    cfg = model_config("asr", arch, kaldi_fbank(normalize="utterance"), tok.to_config(), tok.to_config())
    out = tmp_path_factory.mktemp("demo-asr") / "model"
    save_model_dir(out, build_model(cfg).eval().state_dict(), cfg)
    return out


@pytest.fixture(scope="module")
def prompt() -> str:
    files = sorted(glob.glob("/usr/share/asterisk/sounds/en/*.wav"))
    if not files:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (run tools/setup.sh)")
    return next((f for f in files if Path(f).stem == "activated"), files[0])


def test_asr_demo_shows_the_api_text_and_clear_errors(browser, serve_demo, asr_model_dir, prompt, tmp_path, shots):
    url = serve_demo("asr", asr_model_dir)
    open_page(browser, url, "#asr-audio")
    upload(browser, prompt, "#asr-audio")
    browser.find_element("xpath", "//*[@id='asr-method']//label[contains(., 'greedy')]").click()
    by_css(browser, "#asr-run").click()
    wait_for(browser, lambda d: by_css(d, "#asr-status").text.strip(), what="a result")
    browser.save_screenshot(str(shots / "asr_result.png"))

    (expected,) = avsuite.transcribe_files(avsuite.load_model(asr_model_dir), [prompt], method="greedy")
    status = by_css(browser, "#asr-status").text
    shown = by_css(browser, "#asr-text textarea").get_attribute("value")
    if expected["text"].strip():
        assert status.startswith("Decoded with greedy"), status
        assert shown == expected["text"]
    else:
        assert "no words" in status and shown == ""
    assert_no_traceback(browser)
    assert_loopback_only(browser, url)

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    open_page(browser, url, "#asr-audio")
    upload(browser, str(bad), "#asr-audio")
    by_css(browser, "#asr-run").click()
    wait_for(browser, lambda d: "Could not use this audio" in by_css(d, "#asr-status").text, what="error message")
    assert "broken.wav" in by_css(browser, "#asr-status").text
    assert_no_traceback(browser)

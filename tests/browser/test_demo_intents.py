"""The spoken-intent (continual_slu) demo in headless Chromium: real TTS-free speech in (an Asterisk
prompt), the API's ranked intents out. Skips until the intent model code and the public
``avsuite.predict_intents`` are both present."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

import avsuite
from tests.browser.ui import assert_loopback_only, assert_no_traceback, by_css, open_page, upload, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def intent_model_dir(tmp_path_factory) -> Path:
    intent = pytest.importorskip("avsuite.models.intent", reason="needs the continual_slu models (branch continual)")
    try:
        avsuite.predict_intents
    except (AttributeError, ImportError):
        pytest.skip("needs the public avsuite.predict_intents (continual_slu inference)")
    import torch

    from avsuite.checkpoint import save_model_dir
    from avsuite.config import from_dict

    torch.manual_seed(0)
    names = ["weather.current", "weather.is_rain", "time.now", "date.today", "alerts.set", "volume.up"]
    cfg = from_dict(intent.IntentModelConfig, {"num_classes": len(names), "classes": names, "text_encoder": "hash"})
    model = intent.IntentModel(cfg, avsuite.FrontendConfig(sample_rate=16000, n_mels=40)).eval()
    out = tmp_path_factory.mktemp("demo-intents") / "model"
    save_model_dir(out, model.state_dict(), model.export_config())
    return out


def test_intent_demo_shows_the_api_ranking(browser, serve_demo, intent_model_dir, tmp_path, shots):
    files = sorted(glob.glob("/usr/share/asterisk/sounds/en/*.wav"))
    if not files:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (run tools/setup.sh)")
    url = serve_demo("intents", intent_model_dir)
    open_page(browser, url, "#it-audio")
    upload(browser, files[0], "#it-audio")
    by_css(browser, "#it-run").click()
    wait_for(browser, lambda d: by_css(d, "#it-status").text.strip(), what="a result")
    browser.save_screenshot(str(shots / "intents_result.png"))

    (expected,) = avsuite.predict_intents(avsuite.load_model(intent_model_dir), [files[0]], top_k=5)
    meters = browser.find_elements("css selector", "#it-label meter")
    shown = {m.get_attribute("aria-label"): float(m.get_attribute("value")) for m in meters}
    assert list(shown) == expected["labels"] and len(shown) == 5
    assert set(shown) <= set(avsuite.load_model(intent_model_dir).cfg.classes)     # real intent names
    for lab, score in zip(expected["labels"], expected["scores"]):
        assert shown[lab] == pytest.approx(score, abs=1e-4)
    assert by_css(browser, "#it-status").text.startswith(f"Intent: {expected['labels'][0]}")
    assert_no_traceback(browser)
    assert_loopback_only(browser, url)

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    open_page(browser, url, "#it-audio")
    upload(browser, str(bad), "#it-audio")
    by_css(browser, "#it-run").click()
    wait_for(browser, lambda d: "Could not use this audio" in by_css(d, "#it-status").text, what="error message")
    assert "broken.wav" in by_css(browser, "#it-status").text
    assert_no_traceback(browser)

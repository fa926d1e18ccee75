"""The CLAP demo in a real headless Chromium: upload a real clip, classify, search a manifest.

The page's numbers are checked against the public API called directly on the same model dir, so
a UI that shows stale, reordered or made-up results fails. Screenshots go to a tmp folder (or
``AVSUITE_SCREENSHOTS=DIR``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import avsuite
from tests.browser.ui import (assert_loopback_only, assert_no_traceback, by_css, open_page, status_after_click,
                              type_into, upload, wait_for)

pytestmark = pytest.mark.browser

LABELS = ["frog croaking", "dog barking", "rain on a roof", "church bells"]


@pytest.fixture(scope="module")
def app(serve_demo, clap_model_dir, manifest):
    return serve_demo("clap", clap_model_dir, manifests=[manifest])


@pytest.fixture(scope="module")
def model(clap_model_dir):
    return avsuite.load_model(clap_model_dir)


def shown_scores(driver) -> dict[str, float]:
    """``{label: probability}`` as rendered by gr.Label (one meter per label)."""
    meters = driver.find_elements("css selector", "#zs-label meter")
    return {m.get_attribute("aria-label"): float(m.get_attribute("value")) for m in meters}


def test_zero_shot_shows_the_given_labels_with_the_api_scores(browser, app, model, tux_clips, shots):
    t0 = time.monotonic()
    clip = next(f for f in tux_clips if Path(f).stem == "frog")  # a real frog call, 1-3 s
    open_page(browser, app)
    upload(browser, clip)
    type_into(browser, "#zs-labels", " , ".join(LABELS) + ", frog croaking")  # spaces + a duplicate
    status = status_after_click(browser, "#zs-run", "#zs-status")
    bars = wait_for(browser, lambda d: d.find_elements("css selector", "#zs-plot g.mark-rect path"),
                    what="the bar plot to render")
    browser.save_screenshot(str(shots / "clap_zeroshot.png"))

    (expected,) = avsuite.classify_files(model, LABELS, [clip], top_k=len(LABELS))
    assert "error" not in expected
    shown = shown_scores(browser)
    assert sorted(shown) == sorted(LABELS)                      # exactly the typed labels, deduplicated
    assert list(shown) == expected["labels"]                    # ranked like the API ranks them
    for lab, score in zip(expected["labels"], expected["scores"]):
        assert shown[lab] == pytest.approx(score, abs=1e-4)
    assert sum(shown.values()) == pytest.approx(1.0, abs=1e-3)
    assert status.startswith(f"Top label: {expected['labels'][0]}"), status
    assert len(bars) == len(LABELS)                             # one bar per label, tallest first
    x_axis = by_css(browser, "#zs-plot [aria-roledescription='axis'][aria-label^='X-axis']")
    assert x_axis.get_attribute("aria-label").endswith(": " + ", ".join(expected["labels"]))
    assert_no_traceback(browser)
    assert_loopback_only(browser, app)
    assert time.monotonic() - t0 < 60


def test_corrupt_upload_shows_a_clear_message(browser, app, tmp_path, shots):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    open_page(browser, app)
    upload(browser, str(bad))
    status = status_after_click(browser, "#zs-run", "#zs-status")
    browser.save_screenshot(str(shots / "clap_corrupt.png"))
    assert status.startswith("Error: Could not use this audio"), status
    assert "corrupt" in status and "broken.wav" in status and "/tmp/gradio" not in status, status
    assert shown_scores(browser) == {}                          # no stale or made-up result
    assert_no_traceback(browser)


def test_zero_shot_needs_audio_and_two_labels(browser, app, tux_clips):
    open_page(browser, app)
    assert "Upload or record a clip first" in status_after_click(browser, "#zs-run", "#zs-status")
    upload(browser, tux_clips[0])
    type_into(browser, "#zs-labels", "dog,  ,dog")
    by_css(browser, "#zs-run").click()
    wait_for(browser, lambda d: "at least two" in by_css(d, "#zs-status").text, what="the two-labels message")
    assert_no_traceback(browser)


def test_zero_shot_from_the_microphone(browser, app, shots):
    """Record ~2 s from Chromium's fake microphone (beeps), then classify the recording."""
    open_page(browser, app)
    by_css(browser, "#zs-audio button[aria-label='Record audio']").click()
    by_css(browser, "#zs-audio button.record-button").click()
    time.sleep(2.0)
    stop = wait_for(browser, lambda d: [b for b in d.find_elements("css selector", "#zs-audio button.stop-button")
                                        if b.is_displayed()], what="the stop button")
    stop[0].click()
    wait_for(browser, lambda d: "0:0" in by_css(d, "#zs-audio").text and not
             [b for b in d.find_elements("css selector", "#zs-audio button.stop-button") if b.is_displayed()],
             what="the recording to finish")
    type_into(browser, "#zs-labels", ", ".join(LABELS))
    status = status_after_click(browser, "#zs-run", "#zs-status")
    browser.save_screenshot(str(shots / "clap_microphone.png"))
    assert status.startswith("Top label:"), status
    shown = shown_scores(browser)
    assert sorted(shown) == sorted(LABELS) and sum(shown.values()) == pytest.approx(1.0, abs=1e-3)
    assert_no_traceback(browser)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, tux_clips) -> Path:
    """Six real clips captioned from tuxpaint's .txt files, plus one corrupt clip (skipped, counted)."""
    d = tmp_path_factory.mktemp("manifest")
    rows = []
    for f in tux_clips[:6]:
        txt = Path(f).with_suffix(".txt")
        caption = txt.read_text(errors="replace").splitlines()[0].strip() if txt.exists() else Path(f).stem
        rows.append({"id": Path(f).stem, "audio": f, "captions": [caption or Path(f).stem], "label": Path(f).stem})
    (d / "broken.wav").write_bytes(b"not audio at all" * 100)
    rows.append({"id": "broken", "audio": "broken.wav", "captions": ["nothing"], "label": "none"})
    path = d / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_retrieval_lists_the_api_ranking_with_players(browser, app, model, manifest, shots):
    query = "a bird singing"
    open_page(browser, app)
    tab = browser.find_element("xpath", "//button[@role='tab' and contains(., 'Retrieval')]")
    tab.click()
    wait_for(browser, lambda d: by_css(d, "#rt-manifest").is_displayed(), what="retrieval tab")
    assert manifest.name in by_css(browser, "#rt-manifest").get_attribute("innerHTML") or \
        browser.find_element("css selector", "#rt-manifest input").get_attribute("value") == manifest.name
    type_into(browser, "#rt-query", query)
    status = status_after_click(browser, "#rt-run", "#rt-status")
    hits, skipped = avsuite.rank_clips(model, avsuite.read_manifest(manifest), query, 5)
    assert skipped == 1 and len(hits) == 5
    assert status.startswith(f"{len(hits)} of 7 clips"), status
    assert "1 clip skipped" in status, status
    wait_for(browser, lambda d: by_css(d, "#rt-audio-4").is_displayed(), what="audio players")
    browser.save_screenshot(str(shots / "clap_retrieval.png"))

    table = by_css(browser, "#rt-table").text
    positions = [table.find(f"{h['id']}") for h in hits]
    assert all(p >= 0 for p in positions), (table, hits)
    assert positions == sorted(positions), "table order differs from the API ranking"
    for i, hit in enumerate(hits):
        player = by_css(browser, f"#rt-audio-{i}")
        assert player.is_displayed() and f"#{hit['rank']} {hit['id']}" in player.text, player.text
    assert_no_traceback(browser)
    assert_loopback_only(browser, app)

    clip = hits[2]["audio"]                                     # query by example: the clip finds itself
    upload(browser, clip, "#rt-example")
    status = status_after_click(browser, "#rt-run", "#rt-status")
    by_example, _ = avsuite.rank_clips(model, avsuite.read_manifest(manifest), clip, 5)
    assert by_example[0]["id"] == hits[2]["id"] and by_example[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert f"for the example clip {Path(clip).name}" in status, status
    wait_for(browser, lambda d: f"#1 {hits[2]['id']} (1.000)" in by_css(d, "#rt-audio-0").text, what="self match")
    table = by_css(browser, "#rt-table").text
    assert [table.find(h["id"]) for h in by_example] == sorted(table.find(h["id"]) for h in by_example)
    browser.save_screenshot(str(shots / "clap_retrieval_by_example.png"))


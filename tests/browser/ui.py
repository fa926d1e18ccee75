"""Small Selenium helpers shared by the demo tests (Gradio 6 DOM: components found by ``elem_id``)."""

from __future__ import annotations

import re


def wait_for(driver, predicate, timeout: float = 30.0, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: predicate(d), message=what)


def by_css(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def open_page(driver, url: str, audio: str = "#zs-audio") -> None:
    """Load the app and wait until the ``audio`` component's file input exists."""
    driver.get(url)
    wait_for(driver, lambda d: d.find_elements("css selector", f"{audio} input[type=file]"), what="page load")


def upload(driver, path: str, audio: str = "#zs-audio") -> None:
    """Upload ``path`` through the ``audio`` component and wait until the player replaces the drop zone."""
    by_css(driver, f"{audio} input[type=file]").send_keys(path)
    wait_for(driver, lambda d: "Drop Audio" not in by_css(d, audio).text, what="upload to finish")


def type_into(driver, css: str, text: str) -> None:
    box = by_css(driver, f"{css} textarea, {css} input")
    box.clear()
    box.send_keys(text)


_TIMER = re.compile(r"^\d+(\.\d+)?s(/[\d.]+s)?\s*\n?")   # Gradio's progress timer over a pending output


def _settled(driver, status: str, before: str) -> str | None:
    """The status once Gradio has finished: no progress timer over it (under load the timer shows
    on top of the OLD text, which differs from ``before`` only by that prefix), and new text."""
    text = by_css(driver, status).text.strip()
    if not text or "processing" in text or _TIMER.match(text):
        return None
    return text if text != _TIMER.sub("", before).strip() else None


def status_after_click(driver, button: str, status: str) -> str:
    """Click ``button``; wait until the ``status`` markdown shows a new, finished message and return it."""
    before = by_css(driver, status).text.strip()
    by_css(driver, button).click()
    return wait_for(driver, lambda d: _settled(d, status, before), what=f"{status} to show a new result")


def assert_loopback_only(driver, url: str) -> None:
    """Every resource the page loaded came from the demo server on 127.0.0.1."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [n for n in names if not (n.startswith(url) or n.startswith(("data:", "blob:")))]
    assert not outside, f"the page requested non-loopback resources: {outside[:5]}"


def assert_no_traceback(driver) -> None:
    body = by_css(driver, "body").text
    assert "Traceback" not in body and 'File "' not in body, body[:2000]

"""Fixtures for the demo tests: a tiny random-weight CLAP model dir, a demo served on a free
loopback port inside this process (so the network guard sees every socket it opens), and the
real Debian headless Chromium driven by Selenium through /usr/bin/chromedriver.

Skips with a reason when chromium, chromedriver or selenium is missing."""

from __future__ import annotations

import glob
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.conftest import NetworkAccessError, _is_loopback

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def loopback_only():
    """Module-wide network guard (the autouse one is per test; the app lives for the module)."""
    mp = pytest.MonkeyPatch()
    real = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}

    def guard(fn):
        def wrapped(self, address, *args, **kwargs):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
                raise NetworkAccessError(f"demo tried to open a network connection to {address!r}")
            return fn(self, address, *args, **kwargs)
        return wrapped

    for name, fn in real.items():
        mp.setattr(socket.socket, name, guard(fn))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def clap_model_dir(tmp_path_factory) -> Path:
    """A tiny CLAP model dir with random weights (a UI test needs no trained model)."""
    import torch

    from avsuite.checkpoint import save_model_dir
    from avsuite.models.clap import ClapModel, ClapModelConfig, tiny_frontend

    torch.manual_seed(0)
    model = ClapModel(ClapModelConfig(audio="cnn14_tiny", text="small_tiny", freeze_text=False, embed_dim=32,
                                      max_seconds=2.0), tiny_frontend()).eval()
    out = tmp_path_factory.mktemp("demo-clap") / "model"
    save_model_dir(out, model.state_dict(), model.export_config())
    return out


@pytest.fixture(scope="session")
def tux_clips() -> list[str]:
    """Real animal sound clips (not the spoken ``*_desc*`` descriptions) from tuxpaint-stamps-default."""
    files = sorted(f for f in glob.glob("/usr/share/tuxpaint/stamps/animals/**/*.ogg", recursive=True)
                   if "_desc" not in Path(f).name)
    if len(files) < 6:
        pytest.skip("tuxpaint-stamps-default is not installed (run tools/setup.sh)")
    return files


@pytest.fixture(scope="module")
def serve_demo(loopback_only):
    """``serve_demo(name, model_dir) -> url``: start a demo on a free 127.0.0.1 port; closed at teardown."""
    from avsuite.demos import serve

    started = []

    def start(name: str, model_dir: Path, **kw) -> str:
        blocks, url = serve(name, model_dir, port=0, **kw)
        started.append(blocks)
        assert url.startswith("http://127.0.0.1:")
        return url

    yield start
    for blocks in started:
        blocks.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Debian Chromium (never a downloaded driver); every non-loopback host is unreachable."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.skip(f"needs Debian chromium + chromium-driver: missing {', '.join(missing)}")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only", "--no-pings",
                # a fake microphone (a beep each second) that needs no permission prompt
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                # anything not on loopback goes to a dead local proxy / resolves nowhere
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, log_output=str(log)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Folder for screenshots; AVSUITE_SCREENSHOTS=DIR keeps them somewhere known."""
    keep = os.environ.get("AVSUITE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path_factory.mktemp("screenshots")


def copy_to(path: str, folder: Path, name: str) -> str:
    dst = folder / name
    shutil.copy(path, dst)
    return str(dst)

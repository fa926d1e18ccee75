"""``avsuite demo``: finding demos, clear errors, 127.0.0.1 only, telemetry off, Ctrl+C stops it.
No browser needed (these run with the unit tests' speed, a few seconds each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from avsuite import demos
from avsuite.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_available_lists_the_demo_files():
    names = demos.available()
    assert "clap" in names
    assert names == sorted(p.name[:-7] for p in (ROOT / "demos").glob("*_app.py"))


def test_unknown_demo_names_the_available_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown demo 'nope'; available demos: .*clap"):
        demos.load_demo("nope")
    with pytest.raises(ValueError, match="unknown demo"):
        demos.load_demo("../clap")                       # no path tricks
    with pytest.raises(ValueError, match="demo folder not found"):
        demos.load_demo("clap", tmp_path / "no-such-folder")
    (tmp_path / "empty_app.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match="does not define build_app"):
        demos.load_demo("empty", tmp_path)


def test_cli_reports_bad_input_with_exit_status_2(tmp_path, capsys):
    assert main(["demo", "nope", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown demo 'nope'" in err and "clap" in err and "Traceback" not in err
    assert main(["demo", "clap", "--model", str(tmp_path / "missing")]) == 2
    assert "model dir not found" in capsys.readouterr().err


def test_serve_binds_loopback_only_with_telemetry_off(clap_model_dir, loopback_only):
    blocks, url = demos.serve("clap", clap_model_dir, port=0)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert blocks.server_name == "127.0.0.1" and not blocks.share
        assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
        assert os.environ["HF_HUB_DISABLE_TELEMETRY"] in ("1", "True")   # gradio rewrites "1" as "True"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"avsuite CLAP demo" in resp.read()
    finally:
        blocks.close()


def test_cli_demo_serves_until_interrupted(clap_model_dir):
    """The real command in a child process with telemetry variables unset: it must set them itself."""
    port = demos.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY")}
    code = ("import os, sys; from avsuite.cli import main; rc = main(sys.argv[1:]);"
            "print('analytics', os.environ.get('GRADIO_ANALYTICS_ENABLED'), flush=True); sys.exit(rc)")
    proc = subprocess.Popen([sys.executable, "-c", code, "demo", "clap", "--model", str(clap_model_dir),
                             "--port", str(port)], env={**env, "OMP_NUM_THREADS": "1"}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not any("serving" in x for x in lines):
            time.sleep(0.2)
        assert any("serving" in x for x in lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert b"avsuite CLAP demo" in resp.read()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert f"serving {clap_model_dir} at http://127.0.0.1:{port}/" in out
    assert "analytics False" in out

"""``avsuite demo <name> --model DIR [--port N] [--manifest FILE ...] [--max-file-mb N] [--syncnet DIR]``:
start the Gradio app ``demos/<name>_app.py``.

Each demo module defines ``build_app(model_dir) -> gr.Blocks`` (``build_app(model_dir, manifests=)``
when it searches manifests: only those given on the command line, never a path typed in the page;
``build_app(model_dir, syncnet=)`` when it grades results with an evaluator SyncNet) and imports the public ``avsuite``
API only. The app listens on 127.0.0.1 (never a public address, never ``share=True``) and Gradio's
telemetry is switched off before gradio is imported (it calls home when a Blocks is built).

    blocks, url = serve("clap", Path("runs/quickstart/model"), port=0)   # non-blocking (tests)
    launch("clap", Path("runs/quickstart/model"), port=7860)             # blocks until Ctrl+C
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

#: the top-level demos/ folder of a repo checkout (demos are not part of the installed package)
DEMOS_DIR = Path(__file__).resolve().parent.parent / "demos"
HOST = "127.0.0.1"
#: uploads above this size are refused by the server (Gradio's max_file_size)
MAX_FILE_MB = 50


def _quiet_gradio() -> None:
    """Switch off Gradio's analytics and the HF hub's telemetry; must run before ``import gradio``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def available(demos_dir: Path = DEMOS_DIR) -> list[str]:
    """Names of the demos in ``demos_dir`` (``<name>_app.py`` -> ``name``)."""
    return sorted(p.name[: -len("_app.py")] for p in demos_dir.glob("*_app.py")) if demos_dir.is_dir() else []


def load_demo(name: str, demos_dir: Path = DEMOS_DIR) -> ModuleType:
    """Import ``demos_dir/<name>_app.py``; ValueError naming the available demos if there is none."""
    if not demos_dir.is_dir():
        raise ValueError(f"demo folder not found: {demos_dir} (demos run from a repo checkout of avsuite)")
    path = demos_dir / f"{name}_app.py"
    if not name.isidentifier() or not path.is_file():
        names = ", ".join(available(demos_dir)) or "none"
        raise ValueError(f"unknown demo {name!r}; available demos: {names}")
    _quiet_gradio()
    spec = importlib.util.spec_from_file_location(f"avsuite_demo_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build_app", None)):
        raise ValueError(f"{path} does not define build_app(model_dir)")
    return module


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _check_manifests(name: str, module: ModuleType, manifests: Sequence[Path]) -> list[Path]:
    paths = [Path(m).expanduser().resolve() for m in manifests]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"manifest not found (or not a regular file): {p}")
    if paths and "manifests" not in inspect.signature(module.build_app).parameters:
        raise ValueError(f"demo {name!r} does not search manifests: drop --manifest")
    return paths


def _check_syncnet(name: str, module: ModuleType, syncnet: Path) -> Path:
    path = Path(syncnet).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"syncnet dir not found: {path}")
    if "syncnet" not in inspect.signature(module.build_app).parameters:
        raise ValueError(f"demo {name!r} does not grade with a SyncNet: drop --syncnet")
    return path


def serve(name: str, model_dir: Path, *, port: int = 7860, manifests: Sequence[Path] = (),
          max_file_mb: int = MAX_FILE_MB, syncnet: Path | None = None, **launch_kw: Any) -> tuple[Any, str]:
    """Build demo ``name`` for ``model_dir`` and start it on 127.0.0.1:``port`` (0 = any free port)
    without blocking. Returns ``(blocks, url)``; stop it with ``blocks.close()``.

    ``manifests``: the only manifests the page may search (the page never opens a typed path);
    ``max_file_mb``: uploads larger than this are refused by the server before they are stored;
    ``syncnet``: an evaluator SyncNet model dir for demos that grade their results (lipsync)."""
    module = load_demo(name)
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise FileNotFoundError(f"model dir not found: {model_dir}")
    if not (isinstance(max_file_mb, int) and max_file_mb > 0):
        raise ValueError(f"max_file_mb must be a positive integer, got {max_file_mb!r}")
    paths = _check_manifests(name, module, manifests)
    kwargs: dict[str, Any] = {"manifests": paths} if paths else {}
    if syncnet is not None:
        kwargs["syncnet"] = _check_syncnet(name, module, syncnet)
    blocks = module.build_app(model_dir, **kwargs)
    launch_kw.setdefault("max_file_size", f"{max_file_mb}mb")
    port = port or free_port()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up probes of the local URL
    try:
        blocks.launch(server_name=HOST, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
                      inbrowser=False, ssr_mode=False, mcp_server=False, show_error=False, **launch_kw)
    except OSError as exc:  # gradio raises OSError when the port is taken
        raise ValueError(f"cannot start the demo on {HOST}:{port}: {exc}") from exc
    return blocks, f"http://{HOST}:{port}/"


def launch(name: str, model_dir: Path, *, port: int = 7860, manifests: Sequence[Path] = (),
           max_file_mb: int = MAX_FILE_MB, syncnet: Path | None = None) -> int:
    """Start demo ``name`` on 127.0.0.1:``port`` and serve until interrupted (Ctrl+C); returns 0."""
    blocks = None
    try:
        blocks, url = serve(name, model_dir, port=port, manifests=manifests, max_file_mb=max_file_mb,
                            syncnet=syncnet)
        print(f"avsuite demo {name}: serving {model_dir} at {url} (Ctrl+C to stop)", flush=True)
        blocks.block_thread()
    except KeyboardInterrupt:  # Ctrl+C before gradio's own handler is in place
        print(f"avsuite demo {name}: stopped", flush=True)
    finally:
        if blocks is not None:
            blocks.close()
    return 0

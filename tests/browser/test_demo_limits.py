"""Issue 11, demo limits (no browser needed, a real server on 127.0.0.1):

- uploads above ``--max-file-mb`` are refused by the server before they are stored (was: a 1 GB
  upload was stored);
- the retrieval tab searches only the manifests given with ``--manifest``: a typed server path is
  never opened, and the answer is the same whether that path exists or not (was: it revealed
  whether /etc/shadow exists and echoed field values).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from avsuite.demos import load_demo, serve


def _post_upload(url: str, size: int) -> int:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.wav\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_uploads_over_the_limit_are_refused(loopback_only, clap_model_dir):
    blocks, url = serve("clap", clap_model_dir, port=0, max_file_mb=1)
    try:
        assert _post_upload(url, 200_000) == 200                   # under the limit: stored
        assert _post_upload(url, 3 * 1024 * 1024) == 413           # over: refused
    finally:
        blocks.close()


def test_bad_demo_options_are_clear_errors(clap_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        serve("clap", clap_model_dir, port=0, manifests=[tmp_path / "nope.jsonl"])
    m = tmp_path / "m.jsonl"
    m.write_text("{}\n")
    with pytest.raises(ValueError, match="does not search manifests"):
        serve("intents", clap_model_dir, port=0, manifests=[m])
    with pytest.raises(ValueError, match="max_file_mb"):
        serve("clap", clap_model_dir, port=0, max_file_mb=0)


def test_retrieval_opens_only_allowlisted_manifests(clap_model_dir, tmp_path, monkeypatch):
    app = load_demo("clap")
    import avsuite

    model = avsuite.load_model(clap_model_dir)
    opened = []
    real = avsuite.read_manifest
    monkeypatch.setattr(avsuite, "read_manifest", lambda p, *a, **k: opened.append(Path(p)) or real(p, *a, **k))
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"id": "pw", "audio": "x.wav", "captions": ["hunter2"]}) + "\n")
    answers = []
    for typed in (str(secret), "/etc/shadow", str(tmp_path / "missing.jsonl"), "../" * 8 + "etc/passwd"):
        table, status, *_ = app.retrieve(model, typed, "a dog", None, 5, {}, app.manifest_names([]))
        answers.append(status)
        table, status2, *_ = app.retrieve(model, typed, "a dog", None, 5, {},
                                          app.manifest_names([tmp_path / "allowed.jsonl"]))
        assert "Not one of this demo's manifests" in status2 and "`allowed.jsonl`" in status2
        assert typed not in status2 and "hunter2" not in status2 and table.empty
    assert len(set(answers)) == 1 and "--manifest" in answers[0]          # same answer, exists or not
    assert opened == []                                                     # nothing was read

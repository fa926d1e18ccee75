import json
import subprocess
import sys

import pytest

from avsuite.cli import build_parser, main


def run(*args):
    return subprocess.run([sys.executable, "-m", "avsuite.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_on_every_level():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        r = run(name, "--help")
        assert r.returncode == 0 and "usage: avsuite" in r.stdout, name
    assert "examples:" in run("--help").stdout
    assert run("data", "build", "--help").returncode == 0


def test_bad_input_gives_one_line_errors_not_tracebacks(tmp_path):
    r = run("train", "clap", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path))
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr
    r = run("eval", "clap", "--model", str(tmp_path / "none"), "--data", "x.jsonl", "--out", str(tmp_path))
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr and "avsuite:" in r.stderr
    r = run("train", "nosuchrecipe", "--out", str(tmp_path))
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_not_yet_available_commands_exit_3(tmp_path, monkeypatch):
    from avsuite import recipes

    monkeypatch.setitem(recipes.RECIPES, "lipsync", "avsuite.recipes._not_written_yet")
    assert main(["train", "lipsync", "--out", str(tmp_path)]) == 3


def test_dump_config_round_trips(tmp_path, capsys):
    pytest.importorskip("avsuite.recipes.clap")
    assert main(["train", "clap", "--dump-config", "optim.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out
    (tmp_path / "c.yaml").write_text(out)
    assert main(["train", "clap", "--config", str(tmp_path / "c.yaml"), "--dump-config"]) == 0
    assert capsys.readouterr().out == out


def test_data_build_asterisk_end_to_end(tmp_path):
    import os
    if not os.path.isdir("/usr/share/asterisk/sounds/en"):
        pytest.skip("asterisk-core-sounds-en is not installed (run tools/setup.sh)")
    r = run("data", "build", "asterisk", "--out", str(tmp_path / "ast"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "ast" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) > 400 and {r["split"] for r in rows} == {"train", "valid", "test"}
    assert sum("fr" in r.get("translation", {}) for r in rows) > 400
    r = run("data", "build", "asterisk", "--out", str(tmp_path / "x"), "no_such_option=1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run("data", "build", "nosuch", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "sounds" in r.stderr


def test_overrides_may_come_anywhere():
    from avsuite.cli import parse_args

    a = parse_args(["train", "clap", "x=1", "--config", "c.yaml", "model.init_from=D", "--out", "o", "y=2"])
    assert a.overrides == ["x=1", "model.init_from=D", "y=2"] and a.config == "c.yaml" and a.out == "o"
    b = parse_args(["data", "build", "sounds", "--out", "d", "gm_renders=2"])
    assert b.options == ["gm_renders=2"]
    with pytest.raises(SystemExit):
        parse_args(["train", "clap", "--out", "o", "--bogus"])
    with pytest.raises(SystemExit):
        parse_args(["zeroshot", "--model", "m", "--labels", "a", "f.wav", "k=v", "--nope"])


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_zeroshot_batch_size_must_be_positive(value, capsys):
    from avsuite.cli import main

    with pytest.raises(SystemExit) as info:
        main(["zeroshot", "--model", "m", "--labels", "a,b", "--batch-size", value, "f.wav"])
    assert info.value.code == 2 and "--batch-size" in capsys.readouterr().err

import json

import pytest

from avsuite.data.manifest import ManifestError, read_manifest, validate_row, write_manifest


def test_round_trip_resolves_relative_paths(tmp_path):
    rows = [{"id": "a", "audio": "audio/a.wav", "duration": 1.5, "sr": 16000, "captions": ["a dog"], "label": "dog",
             "translation": {"fr": "un chien"}}]
    write_manifest(rows, tmp_path / "m.jsonl")
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0]["audio"] == str((tmp_path / "audio/a.wav").resolve())
    assert back[0]["translation"] == {"fr": "un chien"}  # extra keys are kept


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    lines = [
        json.dumps({"id": "ok", "audio": "a.wav"}),
        "{not json",
        json.dumps({"id": "x"}),                                     # no audio
        json.dumps({"id": "y", "audio": "y.wav", "duration": -1}),
        json.dumps({"id": "z", "audio": "z.wav", "captions": []}),
        json.dumps({"id": "ok", "audio": "b.wav"}),                  # duplicate id
        json.dumps(["a", "list"]),
        json.dumps({"id": "s", "audio": "s.wav", "sr": "16k"}),
    ]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(tmp_path / "bad.jsonl")
    assert [line for line, _ in info.value.errors] == [2, 3, 4, 5, 6, 7, 8]
    text = str(info.value)
    assert "bad.jsonl:3: missing required field 'audio'" in text and "duplicate id 'ok' (first on line 1)" in text


def test_validate_row_and_write_refuses_bad_rows(tmp_path):
    assert validate_row({"id": "a", "audio": "a.wav"}) == []
    assert validate_row({"id": 3, "audio": "a.wav"})
    with pytest.raises(ManifestError):
        write_manifest([{"id": "a"}], tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("row, msg", [
    ({"id": None, "audio": "a.wav"}, "'id' must be a non-empty string"),
    ({"id": "x", "audio": ""}, "'audio' must be a non-empty string"),
    ({"id": "x", "audio": "a.wav", "duration": float("nan")}, "'duration' must be a number"),
])
def test_hostile_rows_are_refused(tmp_path, row, msg):
    import json as _json

    p = tmp_path / "m.jsonl"
    p.write_text(_json.dumps(row) + "\n" + "[" * 100_000 + "\n")
    with pytest.raises(ManifestError, match=msg) as info:
        read_manifest(p)
    assert "m.jsonl:2: invalid JSON" in str(info.value)              # deep nesting: no RecursionError


def test_oversized_lines_are_refused_by_both_readers(tmp_path):
    import json as _json

    from avsuite.data.rows import ManifestRows

    p = tmp_path / "m.jsonl"
    p.write_text(_json.dumps({"id": "a", "audio": "a.wav", "text": "x" * (2 << 20)}) + "\n")
    for reader in (read_manifest, ManifestRows.from_path):
        with pytest.raises(ManifestError, match="m.jsonl:1: line is 2.0 MB"):
            reader(p)

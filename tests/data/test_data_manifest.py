"""JSONL manifest round trips (plain, gzip, relative paths) and errors naming file:line."""

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from speechseq.data.manifest import Utterance, iter_manifest, read_manifest, write_manifest
from speechseq.errors import ManifestError


def _utts(audio_dir: Path) -> list[Utterance]:
    return [
        Utterance("u1", str(audio_dir / "a.wav"), "hello world", speaker="spk1", duration=1.25),
        Utterance("u2", str(audio_dir / "a.wav"), "", offset=1.5, duration=0.5, language="en"),
        Utterance("u3", str(audio_dir / "b.flac"), "ünïcode text", extra={"sample_rate": 8000, "tag": [1, 2]}),
    ]


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_round_trip_keeps_every_field(tmp_path: Path, name: str) -> None:
    utts = _utts(tmp_path / "audio")
    path = tmp_path / name
    write_manifest(path, utts)
    back = read_manifest(path)
    assert back == utts
    assert [u.extra for u in back] == [u.extra for u in utts]
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert not list(tmp_path.glob("*.tmp*")), "temporary file left behind"


def test_relative_paths_make_manifest_relocatable(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    utts = _utts(corpus / "audio")
    write_manifest(corpus / "m.jsonl.gz", utts, relative=True)
    with gzip.open(corpus / "m.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0]["audio"] == os.path.join("audio", "a.wav")
    shutil.move(str(corpus), str(tmp_path / "moved"))
    back = read_manifest(tmp_path / "moved" / "m.jsonl.gz")
    assert [u.audio for u in back] == [str(tmp_path / "moved" / "audio" / Path(u.audio).name) for u in utts]


def test_absolute_paths_kept_when_not_relative(tmp_path: Path) -> None:
    utts = _utts(tmp_path / "audio")
    write_manifest(tmp_path / "m.jsonl", utts, relative=False)
    first = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert first["audio"] == utts[0].audio


def test_parent_relative_path_points_at_the_same_file(tmp_path: Path) -> None:
    audio = tmp_path / "audio" / "a.wav"
    write_manifest(tmp_path / "lists" / "m.jsonl", [Utterance("u1", str(audio), "x")])
    assert json.loads((tmp_path / "lists" / "m.jsonl").read_text())["audio"] == os.path.join("..", "audio", "a.wav")
    (back,) = read_manifest(tmp_path / "lists" / "m.jsonl")
    assert os.path.normpath(back.audio) == str(audio)


def test_duration_s_alias_and_lazy_iteration(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"id": "a", "audio": "/x.wav", "text": "t", "duration_s": 2}\n\n{"id": "b", "audio": "/y.wav", "text": ""}\n'
    )
    it = iter_manifest(path)
    first = next(it)
    assert first.duration == 2.0 and first.extra == {}
    assert next(it).duration is None


@pytest.mark.parametrize(
    ("lines", "bad_line", "fragment"),
    [
        (['{"id": "a", "audio": "x.wav", "text": "t"}', '{"id": "b", "audio": '], 2, "not valid JSON"),
        (['{"id": "a", "audio": "x.wav", "text": "t"}', "", '{"id": "b", "audio": "y.wav"}'], 3, "missing field"),
        (['{"id": "a", "audio": "x.wav", "text": "t", "duration": -1.0}'], 1, "non-negative"),
        (['{"id": "a", "audio": "x.wav", "text": "t", "offset": "soon"}'], 1, "'offset'"),
        (['["a", "x.wav", "t"]'], 1, "JSON object"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, lines: list[str], bad_line: int, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=fragment) as err:
        read_manifest(path)
    assert f"{path}:{bad_line}:" in str(err.value)


def _truncated_gz(path: Path) -> None:
    with gzip.open(path, "wt") as f:
        f.write("".join(f'{{"id": "u{i}", "audio": "x.wav", "text": "t"}}\n' for i in range(200)))
    path.write_bytes(path.read_bytes()[:-30])  # cut inside the compressed stream


@pytest.mark.parametrize(
    ("name", "write", "where", "fragment"),
    [
        ("plain.jsonl.gz", lambda p: p.write_text('{"id": "a", "audio": "x.wav", "text": "t"}\n'), ":1:",
         "truncated or not gzip"),
        ("latin1.jsonl", lambda p: p.write_bytes(b'{"id": "a", "audio": "x.wav", "text": "t"}\n'
                                                 b'{"id": "b", "audio": "x.wav", "text": "caf\xe9"}\n'), ":2:",
         "not UTF-8"),
        ("huge.jsonl", lambda p: p.write_text('{"id": "a", "audio": "x.wav", "text": "t", "offset": 1' + "0" * 400
                                              + "}\n"), ":1:", "'offset' must be a non-negative number"),
        ("digits.jsonl", lambda p: p.write_text('{"id": "a", "audio": "x.wav", "text": "t", "duration": 1' + "0" * 5000
                                                + "}\n"), ":1:", "not valid JSON"),
    ],
)
def test_unreadable_file_names_file_and_line(tmp_path: Path, name: str, write, where: str, fragment: str) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(ManifestError, match=fragment) as err:
        read_manifest(path)
    assert f"{path}{where}" in str(err.value) and len(str(err.value)) < 400


def test_truncated_gzip_names_the_line_where_reading_stopped(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    _truncated_gz(path)
    read = []
    with pytest.raises(ManifestError, match="truncated or not gzip") as err:
        read.extend(iter_manifest(path))
    assert 0 < len(read) < 200 and f"{path}:{len(read) + 1}:" in str(err.value)


def test_duplicate_id_names_file_and_id(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    row = '{"id": "same", "audio": "x.wav", "text": "t"}\n'
    path.write_text(row + '{"id": "other", "audio": "x.wav", "text": "t"}\n' + row)
    with pytest.raises(ManifestError, match="duplicate") as err:
        read_manifest(path)
    assert str(path) in str(err.value) and "'same'" in str(err.value)


def test_missing_manifest_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")

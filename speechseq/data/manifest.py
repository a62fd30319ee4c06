"""JSONL manifests: one utterance per line.

A line holds ``id``, ``audio`` (path, relative paths are resolved against the manifest's folder), ``text``, and
optionally ``offset`` and ``duration`` (seconds), ``speaker``, ``language``; other keys are kept in ``extra``.
``duration`` may also be given as ``duration_s``. Plain ``.jsonl`` and gzipped ``.jsonl.gz`` are both read.

    utts = read_manifest("data/train.jsonl")
    write_manifest("data/train_sp.jsonl", utts)

A malformed line raises :class:`ManifestError` naming file and line (``train.jsonl:17: missing field 'text'``), as do
a line that is not UTF-8 and a truncated or non-gzip ``.gz`` file (the line where reading stopped).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from speechseq.errors import ManifestError

REQUIRED = ("id", "audio", "text")
KNOWN = ("id", "audio", "text", "offset", "duration", "speaker", "language")


@dataclass(frozen=True)
class Utterance:
    """One manifest line.

    Attributes:
        id: unique utterance id.
        audio: absolute (resolved) path of the audio file.
        text: transcript (may be empty for unlabelled audio).
        offset: start of the segment in the file, seconds.
        duration: segment length in seconds; None means "to the end of the file" (unknown until read).
        speaker: speaker id ("" when unknown).
        language: language code ("" when unknown).
        extra: any other keys of the line, kept for round trips.
    """

    id: str
    audio: str
    text: str
    offset: float = 0.0
    duration: float | None = None
    speaker: str = ""
    language: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self, relative_to: str | Path | None = None) -> dict:
        audio = self.audio
        if relative_to is not None:
            try:
                audio = os.path.relpath(self.audio, relative_to)
            except ValueError:  # different drive on Windows
                pass
        row = {"id": self.id, "audio": audio, "text": self.text}
        if self.offset:
            row["offset"] = self.offset
        if self.duration is not None:
            row["duration"] = self.duration
        if self.speaker:
            row["speaker"] = self.speaker
        if self.language:
            row["language"] = self.language
        row.update(self.extra)
        return row


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_line(row: object, where: str, base_dir: Path) -> Utterance:
    """Validate one decoded JSON line into an Utterance; ``where`` ("file:line") prefixes any error."""
    if not isinstance(row, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in REQUIRED:
        if key not in row:
            raise ManifestError(f"{where}: missing field {key!r}")
    uid, audio, text = row["id"], row["audio"], row["text"]
    if not isinstance(uid, str) or not uid:
        raise ManifestError(f"{where}: field 'id' must be a non-empty string")
    if not isinstance(audio, str) or not audio:
        raise ManifestError(f"{where}: field 'audio' must be a non-empty path string")
    if not isinstance(text, str):
        raise ManifestError(f"{where}: field 'text' must be a string")
    duration = row.get("duration", row.get("duration_s"))
    offset = row.get("offset", 0.0)
    for name, value in (("duration", duration), ("offset", offset)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _is_finite(value) or value < 0:
            raise ManifestError(f"{where}: field {name!r} must be a non-negative number, got {_short(value)}")
    if duration is not None and duration == 0:
        raise ManifestError(f"{where}: field 'duration' is 0 (empty segment)")
    path = Path(audio)
    if not path.is_absolute():
        path = Path(os.path.normpath(base_dir / path))
    extra = {k: v for k, v in row.items() if k not in KNOWN and k != "duration_s"}
    return Utterance(
        id=uid,
        audio=str(path),
        text=text,
        offset=float(offset),
        duration=None if duration is None else float(duration),
        speaker="" if row.get("speaker") is None else str(row["speaker"]),
        language="" if row.get("language") is None else str(row["language"]),
        extra=extra,
    )


def iter_manifest(path: str | Path) -> Iterator[Utterance]:
    """Lazily yield the utterances of a JSONL(.gz) manifest, validating each line."""
    for _, utt in _numbered(path):
        yield utt


def _numbered(path: str | Path) -> Iterator[tuple[int, Utterance]]:
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    base_dir = path.resolve().parent
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
        except ValueError as e:  # e.g. an integer over Python's 4300-digit conversion limit
            raise ManifestError(f"{where}: not valid JSON ({_short(str(e), 80)})") from None
        yield lineno, parse_line(row, where, base_dir)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a plain or gzipped file, each line decoded as UTF-8 on its own so that an error can
    name its line."""
    lineno = 0
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ManifestError(f"{path}:{lineno}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ManifestError(f"{path}:{lineno + 1}: cannot decompress ({e}); the file is truncated or not "
                            "gzip") from None


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a whole manifest; duplicate ids are an error."""
    utts = []
    first_line: dict[str, int] = {}
    for lineno, u in _numbered(path):
        if u.id in first_line:
            raise ManifestError(f"{path}:{lineno}: duplicate utterance id {u.id!r} (first on line {first_line[u.id]})")
        first_line[u.id] = lineno
        utts.append(u)
    return utts


def write_manifest(path: str | Path, utts: Iterable[Utterance], relative: bool = True) -> None:
    """Write utterances as JSONL (gzipped if the name ends in .gz), atomically (temporary file, then rename).

    With ``relative`` the audio paths are written relative to the manifest's folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp" + (".gz" if path.suffix == ".gz" else ""))
    base = path.resolve().parent if relative else None
    with _open(tmp, "w") as f:
        for u in utts:
            f.write(json.dumps(u.to_json(base), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def split_halves(utts: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """Two halves of ``utts``, alternating within each (speaker, text) group in the given order: the first, third,
    ... utterance of a group goes to the first half, the second, fourth, ... to the second. Each half then holds
    every speaker saying every sentence about equally often (FSDD: each digit 25 times per speaker in each half), e.g.
    to adapt to a speaker on one half without labels and test on the other."""
    seen: dict[tuple[str, str], int] = {}
    halves: tuple[list[Utterance], list[Utterance]] = ([], [])
    for u in utts:
        n = seen.get((u.speaker, u.text), 0)
        halves[n % 2].append(u)
        seen[(u.speaker, u.text)] = n + 1
    return halves

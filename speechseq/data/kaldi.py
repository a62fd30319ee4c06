"""Kaldi data directories <-> :class:`~speechseq.data.manifest.Utterance` lists.

A Kaldi data directory is a folder of sorted ``key value`` text files:

* ``wav.scp``  ``<recording-id> <audio path>`` (required). Piped commands (``sox x.wav -t wav - |``), standard input
  (``-``) and ark offsets (``data.ark:1234``) are refused: speechseq reads audio files with soundfile only.
* ``text``     ``<utterance-id> <transcript>`` (required; the transcript may be empty).
* ``segments`` ``<utterance-id> <recording-id> <start_s> <end_s>`` (optional; ``end_s`` = -1 means "to the end of the
  recording"). Without it every recording is one utterance with the recording's id.
* ``utt2spk``  ``<utterance-id> <speaker-id>`` (optional when reading, always written).
* ``utt2dur``  ``<utterance-id> <duration_s>`` (optional; written when durations are known so round trips keep them).
* ``utt2lang`` ``<utterance-id> <language>`` (optional; written when any utterance has a language).
* ``spk2utt``  written for Kaldi tools, ignored when reading (it is derived from utt2spk).

    utts = read_kaldi_dir("data/train")
    write_kaldi_dir("data/train_copy", utts)

Conventions (documented choices):

* An utterance without a speaker is written with its own id as speaker (Kaldi requires every utterance in utt2spk);
  reading maps a speaker equal to the utterance id back to "" so the round trip is lossless.
* Relative audio paths in wav.scp are resolved against ``audio_root`` (default: the current directory, as Kaldi recipes
  run from the recipe root). ``write_kaldi_dir`` writes the absolute paths held by the utterances.
* Kaldi's ``validate_data_dir.sh`` also wants utterance ids to start with the speaker id, so that utt2spk sorted by
  utterance is also sorted by speaker; that is a naming matter of the corpus and is not enforced here.

Malformed lines, and lines that are not UTF-8, raise :class:`ManifestError` naming ``file:line``.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from speechseq.data.manifest import Utterance
from speechseq.errors import AudioError, ManifestError

# A duration that differs from the file's length by more than this is a sub-segment (needs a segments file).
_SUBSEGMENT_TOLERANCE_S = 0.01
# A Kaldi extended filename that reads from an offset into an archive: ``foo.ark:1234`` (optionally ``[range]``).
_ARK_OFFSET = re.compile(r":\d+(\[[^\]]*\])?$")


def _read_table(path: Path, min_fields: int, max_fields: int | None) -> dict[str, tuple[list[str], str]]:
    """Read a ``key value...`` Kaldi table into {key: (fields after the key, "file:line")}.

    ``max_fields`` None means "the rest of the line is one value" (text, wav.scp), returned as a single field (may be
    empty when ``min_fields`` is 0).
    """
    table: dict[str, tuple[list[str], str]] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise ManifestError(f"{where}: not UTF-8 text (byte {e.start}: {e.reason})") from None
            if not line.strip():
                continue
            if max_fields is None:
                parts = line.strip().split(maxsplit=1)
                key, values = parts[0], [parts[1].strip()] if len(parts) > 1 else []
                if len(values) < min_fields:
                    raise ManifestError(f"{where}: expected '<id> <value>', got {line!r}")
                values = values or [""]
            else:
                key, *values = line.split()
                if not min_fields <= len(values) <= max_fields:
                    want = min_fields + 1 if min_fields == max_fields else f"{min_fields + 1}-{max_fields + 1}"
                    raise ManifestError(f"{where}: expected {want} fields, got {len(values) + 1} in {line!r}")
            if key in table:
                raise ManifestError(f"{where}: duplicate id {key!r} (first at {table[key][1]})")
            table[key] = (values, where)
    return table


def _parse_seconds(value: str, where: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ManifestError(f"{where}: {name} {value!r} is not a number") from None
    if not math.isfinite(seconds):
        raise ManifestError(f"{where}: {name} {value!r} is not finite")
    return seconds


def _read_wav_scp(path: Path, audio_root: Path) -> dict[str, str]:
    recordings: dict[str, str] = {}
    for rec_id, ([audio], where) in _read_table(path, 1, None).items():
        if audio.endswith("|"):
            raise ManifestError(
                f"{where}: piped command {audio!r} is unsupported (speechseq reads audio files directly; "
                "convert the audio to files, e.g. with sox, and list their paths)"
            )
        if audio == "-":
            raise ManifestError(f"{where}: audio from standard input ('-') is unsupported; list an audio file path")
        if _ARK_OFFSET.search(audio):
            raise ManifestError(
                f"{where}: ark offset {audio!r} is unsupported (speechseq reads whole audio files; extract the "
                "recordings to wav files, e.g. with wav-copy, and list their paths)"
            )
        recordings[rec_id] = os.path.normpath(audio_root / audio)
    return recordings


def _read_segments(path: Path, recordings: dict[str, str]) -> dict[str, tuple[str, float, float | None]]:
    """{utt: (audio path, offset_s, duration_s or None)} from a segments file."""
    segments: dict[str, tuple[str, float, float | None]] = {}
    for utt_id, ((rec_id, start_s, end_s), where) in _read_table(path, 3, 3).items():
        if rec_id not in recordings:
            raise ManifestError(f"{where}: recording {rec_id!r} of utterance {utt_id!r} is not in wav.scp")
        start = _parse_seconds(start_s, where, "start")
        end = _parse_seconds(end_s, where, "end")
        if start < 0:
            raise ManifestError(f"{where}: negative start {start_s} for utterance {utt_id!r}")
        if end == -1:
            segments[utt_id] = (recordings[rec_id], start, None)
            continue
        if end <= start:
            raise ManifestError(f"{where}: end {end_s} is not after start {start_s} for utterance {utt_id!r}")
        segments[utt_id] = (recordings[rec_id], start, end - start)
    return segments


def _shown(ids: list[str], limit: int = 5) -> str:
    return ", ".join(repr(u) for u in ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _optional_column(data_dir: Path, name: str, utt_ids: Sequence[str], required: bool) -> dict[str, str]:
    """One-value table ``name`` checked against the utterance ids ({} when the file is absent)."""
    path = data_dir / name
    if not path.exists():
        return {}
    table = _read_table(path, 1, 1)
    known = set(utt_ids)
    for key, (_, where) in table.items():
        if key not in known:
            raise ManifestError(f"{where}: utterance {key!r} is not in wav.scp/segments")
    if required:
        missing = [u for u in utt_ids if u not in table]
        if missing:
            raise ManifestError(f"{path}: no entry for utterance(s) {_shown(missing)}")
    return {key: values[0] for key, (values, _) in table.items()}


def read_kaldi_dir(data_dir: str | Path, audio_root: str | Path | None = None) -> list[Utterance]:
    """Read a Kaldi data directory into utterances, sorted by id.

    Args:
        data_dir: folder holding wav.scp and text (and optionally segments, utt2spk, utt2dur, utt2lang).
        audio_root: folder that relative wav.scp paths are resolved against (default: the current directory).

    Returns:
        One Utterance per utterance id: absolute audio path, text, offset/duration in seconds (from segments and
        utt2dur; duration None when unknown), speaker ("" when absent) and language.

    Raises:
        ManifestError: a missing required file, a malformed or duplicate line (names file:line), a piped wav.scp entry,
            an utterance without a transcript or a transcript without an utterance.
    """
    data_dir = Path(data_dir)
    root = Path(audio_root) if audio_root is not None else Path.cwd()
    for name in ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise ManifestError(f"{data_dir / name}: required Kaldi file not found")
    recordings = _read_wav_scp(data_dir / "wav.scp", root.resolve())
    if (data_dir / "segments").exists():
        spans = _read_segments(data_dir / "segments", recordings)
    else:
        spans = {rec_id: (audio, 0.0, None) for rec_id, audio in recordings.items()}

    texts = _read_table(data_dir / "text", 0, None)
    for utt_id, (_, where) in texts.items():
        if utt_id not in spans:
            raise ManifestError(f"{where}: utterance {utt_id!r} has a transcript but is not in wav.scp/segments")
    missing = sorted(u for u in spans if u not in texts)
    if missing:
        raise ManifestError(f"{data_dir / 'text'}: no transcript for utterance(s) {_shown(missing)}")

    utt_ids = sorted(spans)
    speakers = _optional_column(data_dir, "utt2spk", utt_ids, required=True)
    languages = _optional_column(data_dir, "utt2lang", utt_ids, required=False)
    durations = _read_durations(data_dir / "utt2dur", spans)
    utts = []
    for utt_id in utt_ids:
        audio, offset, duration = spans[utt_id]
        speaker = speakers.get(utt_id, "")
        utts.append(
            Utterance(
                id=utt_id,
                audio=audio,
                text=texts[utt_id][0][0],
                offset=offset,
                duration=durations.get(utt_id, duration),
                speaker="" if speaker == utt_id else speaker,
                language=languages.get(utt_id, ""),
            )
        )
    return utts


def _read_durations(path: Path, spans: dict[str, tuple[str, float, float | None]]) -> dict[str, float]:
    """utt2dur values; they must agree with segments (within 10 ms) where both give a duration."""
    if not path.exists():
        return {}
    durations = {}
    for utt_id, ([value], where) in _read_table(path, 1, 1).items():
        if utt_id not in spans:
            raise ManifestError(f"{where}: utterance {utt_id!r} is not in wav.scp/segments")
        duration = _parse_seconds(value, where, "duration")
        if duration <= 0:
            raise ManifestError(f"{where}: duration {value} of utterance {utt_id!r} must be positive")
        from_segments = spans[utt_id][2]
        if from_segments is not None and abs(from_segments - duration) > _SUBSEGMENT_TOLERANCE_S:
            raise ManifestError(
                f"{where}: duration {value} of {utt_id!r} disagrees with segments ({from_segments:.3f} s)"
            )
        durations[utt_id] = duration
    return durations


def _file_duration_s(audio: str) -> float | None:
    """Length of an audio file in seconds, None when it cannot be read."""
    from speechseq.audio.io import audio_info

    try:
        num_samples, sample_rate = audio_info(audio)
    except AudioError:
        return None
    return num_samples / sample_rate


def _needs_segments(utts: Sequence[Utterance]) -> bool:
    """True when some utterance is only part of its file (offset, shared file, or shorter than the file)."""
    if len({u.audio for u in utts}) < len(utts) or any(u.offset for u in utts):
        return True
    for u in utts:
        if u.duration is None:
            continue
        file_s = _file_duration_s(u.audio)
        if file_s is None or abs(file_s - u.duration) > _SUBSEGMENT_TOLERANCE_S:
            return True
    return False


def _recording_ids(utts: Sequence[Utterance]) -> dict[str, str]:
    """A unique, whitespace-free recording id per audio path (the file stem, suffixed on clashes)."""
    rec_ids: dict[str, str] = {}
    taken: set[str] = set()
    for audio in sorted({u.audio for u in utts}):
        stem = "_".join(Path(audio).stem.split()) or "rec"
        rec_id, n = stem, 1
        while rec_id in taken:
            n += 1
            rec_id = f"{stem}-{n}"
        taken.add(rec_id)
        rec_ids[audio] = rec_id
    return rec_ids


def _check_writable(u: Utterance) -> None:
    if not u.id or len(u.id.split()) != 1 or u.id.strip() != u.id:
        raise ManifestError(f"utterance id {u.id!r} is empty or has whitespace; Kaldi ids cannot")
    if "\n" in u.text or "\r" in u.text:
        raise ManifestError(f"utterance {u.id!r}: transcript has a line break")
    for name, value in (("speaker", u.speaker), ("language", u.language)):
        if value and len(value.split()) != 1:
            raise ManifestError(f"utterance {u.id!r}: {name} {value!r} has whitespace; Kaldi ids cannot")
    if "\n" in u.audio or u.audio.rstrip().endswith("|"):
        raise ManifestError(f"utterance {u.id!r}: audio path {u.audio!r} cannot be written to wav.scp")


def _write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_kaldi_dir(data_dir: str | Path, utts: Sequence[Utterance]) -> None:
    """Write utterances as a Kaldi data directory, every file sorted by its first column (C order).

    Writes wav.scp, text, utt2spk, spk2utt; utt2dur when any duration is known; utt2lang when any language is set; and
    segments (with recording ids derived from file names) when any utterance is a sub-segment of its file: a non-zero
    offset, several utterances in one file, or a duration shorter than the file. Without segments the recording id is
    the utterance id. Stale segments/utt2dur/utt2lang files of an earlier write are removed.

    Args:
        data_dir: output folder (created).
        utts: utterances with unique, whitespace-free ids.

    Raises:
        ManifestError: duplicate ids, or an id/speaker/language/path/text that Kaldi's format cannot hold.
    """
    data_dir = Path(data_dir)
    utts = sorted(utts, key=lambda u: u.id)
    for prev, cur in zip(utts, utts[1:]):
        if prev.id == cur.id:
            raise ManifestError(f"duplicate utterance id {cur.id!r}")
    for u in utts:
        _check_writable(u)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("segments", "utt2dur", "utt2lang"):
        (data_dir / name).unlink(missing_ok=True)

    if _needs_segments(utts):
        rec_ids = _recording_ids(utts)
        _write_lines(data_dir / "wav.scp", sorted(f"{rec_ids[a]} {a}" for a in rec_ids))
        seg_lines = []
        for u in utts:
            end = -1 if u.duration is None else u.offset + u.duration
            seg_lines.append(f"{u.id} {rec_ids[u.audio]} {u.offset!r} {float(end)!r}")
        _write_lines(data_dir / "segments", seg_lines)
    else:
        _write_lines(data_dir / "wav.scp", [f"{u.id} {u.audio}" for u in utts])
    _write_lines(data_dir / "text", [f"{u.id} {u.text}" if u.text else u.id for u in utts])
    speaker_of = {u.id: u.speaker or u.id for u in utts}
    _write_lines(data_dir / "utt2spk", [f"{uid} {spk}" for uid, spk in speaker_of.items()])
    by_speaker: dict[str, list[str]] = defaultdict(list)
    for uid, spk in speaker_of.items():
        by_speaker[spk].append(uid)
    _write_lines(data_dir / "spk2utt", [f"{spk} {' '.join(by_speaker[spk])}" for spk in sorted(by_speaker)])
    if any(u.duration is not None for u in utts):
        _write_lines(data_dir / "utt2dur", [f"{u.id} {u.duration!r}" for u in utts if u.duration is not None])
    if any(u.language for u in utts):
        _write_lines(data_dir / "utt2lang", [f"{u.id} {u.language}" for u in utts if u.language])

"""AISHELL-1 (openslr.org/33): read Mandarin, 400 speakers, 16 kHz; download it and write train/dev/test manifests.

    root = download_aishell("downloads")                  # -> downloads/data_aishell/...
    manifests = prepare_aishell(root, "data/aishell")     # {"train": ..., "dev": ..., "test": ...}

Layout of the release archive ``data_aishell.tgz`` once extracted::

    data_aishell/transcript/aishell_transcript_v0.8.txt   "<id> <words separated by spaces>" per line
    data_aishell/wav/S0002.tar.gz, ...                    one archive per speaker, holding train/S0002/<id>.wav
                                                          (dev/<speaker>/... or test/<speaker>/... for the others)

:func:`prepare_aishell` unpacks the per-speaker archives in place, once each (a ``.S0002.tar.gz.extracted`` marker is
written next to each archive), which gives ``wav/{train,dev,test}/<speaker>/<id>.wav``; a tree already unpacked
(no archives left) is used as it is. Manifest lines: id (e.g. ``BAC009S0002W0122``), audio (absolute path of the
wav; audio is never copied), text = the transcript with its spaces removed (Mandarin characters; latin letters and
digits are kept as they are), duration (s, from the file header), speaker (``S0002``), language ``zh``. Wavs with
no transcript line are skipped (their number is logged as a warning); transcript lines with no wav are ignored.

Disk: the archive is about 15 GB; unpacking it and then the speaker archives needs about twice as much again.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path, PurePosixPath

from speechseq.audio.io import audio_info
from speechseq.data.corpora.download import download, extract
from speechseq.data.manifest import Utterance, write_manifest
from speechseq.errors import ManifestError, SpeechseqError

BASE_URL = "https://www.openslr.org/resources/33"
ARCHIVE = "data_aishell.tgz"
MD5 = "2f494334227864a8a8fec932999db9d8"  # from https://www.openslr.org/resources/33/md5sum.txt
TRANSCRIPT = "transcript/aishell_transcript_v0.8.txt"
SPLITS = ("train", "dev", "test")

logger = logging.getLogger("speechseq.data")


def download_aishell(dest: str | Path, base_url: str = BASE_URL, md5: str | None = MD5,
                     keep_archive: bool = True) -> Path:
    """Download ``data_aishell.tgz`` and extract it into ``dest/data_aishell``.

    Resumable: nothing is done when ``dest/data_aishell/.complete`` exists, an archive already downloaded is not
    fetched again, and a partial http(s) download continues where it stopped. The per-speaker wav archives inside
    are left packed; :func:`prepare_aishell` unpacks them.

    Args:
        dest: download folder (the archive goes to ``dest/data_aishell.tgz``).
        base_url: folder URL holding ``data_aishell.tgz`` (``file://`` works too).
        md5: expected md5 of the archive (default the official openslr sum); None skips the check.
        keep_archive: keep ``data_aishell.tgz`` after a successful extraction.

    Returns:
        ``dest`` (pass it to :func:`prepare_aishell`).

    Raises:
        SpeechseqError: download failure, md5 mismatch (the archive is deleted), or an archive without
            ``data_aishell/``.
    """
    dest = Path(dest)
    marker = dest / "data_aishell" / ".complete"
    if marker.is_file():
        return dest
    archive = download(f"{base_url.rstrip('/')}/{ARCHIVE}", dest / ARCHIVE, md5=md5)
    extract(archive, dest)
    if not (dest / "data_aishell").is_dir():
        raise SpeechseqError(f"{archive}: no data_aishell/ folder in the archive")
    marker.write_text("ok\n")
    if not keep_archive:
        archive.unlink()
    return dest


def _find_base(root: Path) -> Path:
    """The ``data_aishell`` folder: ``root/data_aishell`` or ``root`` itself."""
    for base in (root / "data_aishell", root):
        if (base / "transcript").is_dir() or (base / "wav").is_dir():
            return base
    raise ManifestError(f"{root}: not an AISHELL-1 folder (expected {root / 'data_aishell' / TRANSCRIPT} and "
                        f"{root / 'data_aishell' / 'wav'}/; extract data_aishell.tgz from openslr.org/33 there, "
                        "or fetch it with download_aishell / `prepare aishell --download`)")


def _read_transcript(path: Path) -> dict[str, str]:
    """id -> text with the spaces between words removed."""
    if not path.is_file():
        raise ManifestError(f"{path}: AISHELL-1 transcript not found")
    texts: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ManifestError(f"{path}:{lineno}: expected '<id> <text>', got {line!r}")
        if fields[0] in texts:
            raise ManifestError(f"{path}:{lineno}: utterance id {fields[0]!r} appears twice")
        texts[fields[0]] = "".join(fields[1:])
    return texts


def _archive_dest(archive: Path, wav_dir: Path) -> Path:
    """Where a speaker archive unpacks: ``wav/`` when its members start with a split name (the release layout),
    else the split folder it lies in (an archive in ``wav/train/`` holding ``S0002/...``)."""
    try:
        with tarfile.open(archive) as tar:
            first = tar.next()
    except (tarfile.TarError, EOFError) as e:
        raise SpeechseqError(f"{archive}: cannot read ({e}); extract data_aishell.tgz again") from None
    parts = [p for p in PurePosixPath(first.name).parts if p != "."] if first is not None else []
    if parts and parts[0] in SPLITS:
        return wav_dir
    if parts and archive.parent.name in SPLITS:
        return archive.parent
    found = first.name if first is not None else "nothing"
    raise ManifestError(f"{archive}: expected members under train/, dev/ or test/ (first member: {found!r})")


def _unpack_speakers(wav_dir: Path) -> int:
    """Extract every ``wav/*.tar.gz`` (and ``wav/<split>/*.tar.gz``) not yet marked as done; returns how many."""
    archives = sorted(wav_dir.glob("*.tar.gz")) + [a for s in SPLITS for a in sorted((wav_dir / s).glob("*.tar.gz"))]
    count = 0
    for archive in archives:
        marker = archive.with_name(f".{archive.name}.extracted")
        if marker.is_file():
            continue
        extract(archive, _archive_dest(archive, wav_dir))
        marker.write_text("ok\n")
        count += 1
    return count


def _split_utterances(split_dir: Path, texts: dict[str, str], transcript: Path) -> list[Utterance]:
    """Utterances of ``wav/<split>/<speaker>/<id>.wav``, sorted by path; wavs without a transcript are skipped."""
    wavs = sorted(split_dir.glob("*/*.wav"))
    if not wavs:
        raise ManifestError(f"{split_dir}: no <speaker>/<id>.wav files")
    utts = []
    for wav in wavs:
        text = texts.get(wav.stem)
        if text is None:
            continue
        num_samples, sample_rate = audio_info(wav)
        utts.append(Utterance(id=wav.stem, audio=str(wav.resolve()), text=text,
                              duration=round(num_samples / sample_rate, 4), speaker=wav.parent.name, language="zh"))
    skipped = len(wavs) - len(utts)
    if not utts:
        raise ManifestError(f"{split_dir}: none of its {len(wavs)} wavs has a line in {transcript}")
    if skipped:
        logger.warning("%s: %d of %d wavs have no line in %s; skipped", split_dir, skipped, len(wavs), transcript)
    return utts


def prepare_aishell(root: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``out_dir/{train,dev,test}.jsonl`` for an extracted AISHELL-1 tree.

    Unpacks the per-speaker wav archives first where that has not been done (see the module docstring), so a second
    call only rewrites the manifests.

    Args:
        root: folder holding ``data_aishell/`` (as returned by :func:`download_aishell`), or that folder itself.
        out_dir: where the manifests go.

    Returns:
        split -> manifest path, for ``train``, ``dev`` and ``test``.

    Raises:
        ManifestError: no ``data_aishell`` layout under ``root``, a missing transcript, wav folder or split folder,
            a malformed transcript line (the message names the file and line), or a split whose wavs have no
            transcript at all.
        SpeechseqError: a speaker archive that cannot be extracted.
    """
    root, out_dir = Path(root), Path(out_dir)
    base = _find_base(root)
    transcript = base / TRANSCRIPT
    texts = _read_transcript(transcript)
    wav_dir = base / "wav"
    if not wav_dir.is_dir():
        raise ManifestError(f"{wav_dir}: AISHELL-1 wav folder not found")
    unpacked = _unpack_speakers(wav_dir)
    if unpacked:
        logger.info("%s: unpacked %d speaker archives", wav_dir, unpacked)
    manifests: dict[str, Path] = {}
    for split in SPLITS:
        split_dir = wav_dir / split
        if not split_dir.is_dir():
            found = sorted(p.name for p in wav_dir.iterdir() if not p.name.startswith("."))
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise ManifestError(f"{split_dir}: split folder not found (found in {wav_dir}: {shown or 'nothing'})")
        manifests[split] = out_dir / f"{split}.jsonl"
        write_manifest(manifests[split], _split_utterances(split_dir, texts, transcript), relative=False)
    return manifests

"""LibriSpeech (openslr.org/12): download the subset archives and write one manifest per subset.

    root = download_librispeech("downloads", ["dev-clean", "test-clean"])   # -> downloads/LibriSpeech/...
    manifests = prepare_librispeech(root, "data/librispeech", ["dev-clean", "test-clean"])
    # {"dev-clean": data/librispeech/dev-clean.jsonl, "test-clean": ...}

Layout read: ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (lines ``<id> <TEXT>``) next
to ``<speaker>-<chapter>-<utt>.flac``. Manifest lines: id, audio (absolute path of the original flac; audio is
never copied), text lower-cased, duration (s, from the file header), speaker, language ``en``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from speechseq.audio.io import audio_info
from speechseq.data.corpora.download import download, extract
from speechseq.data.manifest import Utterance, write_manifest
from speechseq.errors import ConfigError, ManifestError, SpeechseqError

BASE_URL = "https://www.openslr.org/resources/12"
# From https://www.openslr.org/resources/12/md5sum.txt
MD5_SUMS = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
SUBSETS = tuple(MD5_SUMS)
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def _as_list(subsets: Sequence[str] | str) -> list[str]:
    if isinstance(subsets, str):
        subsets = subsets.split(",")
    out = [s.strip() for s in subsets if s.strip()]
    if not out:
        raise ConfigError("no LibriSpeech subset given")
    return out


def download_librispeech(dest: str | Path, subsets: Sequence[str] | str, base_url: str = BASE_URL,
                         check_md5: bool = True, md5_sums: dict[str, str] | None = None,
                         keep_archives: bool = True) -> Path:
    """Download and extract LibriSpeech subsets into ``dest/LibriSpeech/<subset>``.

    Resumable: a subset whose folder holds a ``.complete`` marker is skipped, an archive already downloaded is not
    fetched again, and a partial http(s) download continues where it stopped.

    Args:
        dest: download folder (archives ``dest/<subset>.tar.gz``, audio under ``dest/LibriSpeech``).
        subsets: names such as ``["train-clean-100", "dev-clean"]`` (or one comma-separated string).
        base_url: folder URL holding ``<subset>.tar.gz`` (``file://`` works too).
        check_md5: verify archives against ``md5_sums`` before extracting (subsets without a sum are not checked).
        md5_sums: subset -> md5 hex digest; default the official openslr sums (:data:`MD5_SUMS`).
        keep_archives: keep the ``.tar.gz`` after a successful extraction.

    Returns:
        ``dest`` (pass it to :func:`prepare_librispeech`).

    Raises:
        ConfigError: unknown subset name.
        SpeechseqError: download failure, md5 mismatch (the archive is deleted), or an archive without the subset.
    """
    dest = Path(dest)
    sums = MD5_SUMS if md5_sums is None else md5_sums
    names = _as_list(subsets)
    for subset in names:
        if subset not in SUBSETS:
            raise ConfigError(f"unknown LibriSpeech subset {subset!r} (choices: {', '.join(SUBSETS)})")
    dest.mkdir(parents=True, exist_ok=True)
    for subset in names:
        marker = dest / "LibriSpeech" / subset / ".complete"
        if marker.is_file():
            continue
        archive = download(f"{base_url.rstrip('/')}/{subset}.tar.gz", dest / f"{subset}.tar.gz",
                           md5=sums.get(subset) if check_md5 else None)
        extract(archive, dest)
        if not (dest / "LibriSpeech" / subset).is_dir():
            raise SpeechseqError(f"{archive}: no LibriSpeech/{subset}/ folder in the archive")
        marker.write_text("ok\n")
        if not keep_archives:
            archive.unlink()
    return dest


def _read_chapter(trans: Path, speaker: str) -> list[Utterance]:
    utts = []
    for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        uid, _, text = line.strip().partition(" ")
        if not _UTT_ID.match(uid) or not text.strip():
            raise ManifestError(f"{trans}:{lineno}: expected '<speaker>-<chapter>-<utt> <TEXT>', got {line!r}")
        flac = trans.parent / f"{uid}.flac"
        if not flac.is_file():
            raise ManifestError(f"{trans}:{lineno}: audio {flac.name} not found in {trans.parent}")
        num_samples, sample_rate = audio_info(flac)
        utts.append(Utterance(id=uid, audio=str(flac.resolve()), text=" ".join(text.lower().split()),
                              duration=round(num_samples / sample_rate, 4), speaker=speaker, language="en"))
    return utts


def prepare_librispeech(root: str | Path, out_dir: str | Path, subsets: Sequence[str] | str) -> dict[str, Path]:
    """Write ``out_dir/<subset>.jsonl`` for each subset of an extracted LibriSpeech tree.

    Args:
        root: folder holding ``LibriSpeech/`` (as returned by :func:`download_librispeech`), or that folder itself.
        out_dir: where the manifests go.
        subsets: subset folder names, e.g. ``["dev-clean"]`` (or one comma-separated string).

    Returns:
        subset -> manifest path.

    Raises:
        ManifestError: missing subset folder or transcripts, a malformed transcript line, or a flac listed in a
            transcript that does not exist (the message names the transcript file and line).
    """
    root, out_dir = Path(root), Path(out_dir)
    base = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    manifests: dict[str, Path] = {}
    for subset in _as_list(subsets):
        subset_dir = base / subset
        if not subset_dir.is_dir():
            found = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            raise ManifestError(f"{subset_dir}: subset folder not found (found: {', '.join(found) or 'nothing'})")
        transcripts = sorted(subset_dir.glob("*/*/*.trans.txt"))
        if not transcripts:
            raise ManifestError(f"{subset_dir}: no <speaker>/<chapter>/*.trans.txt transcripts")
        utts: list[Utterance] = []
        for trans in transcripts:
            utts += _read_chapter(trans, speaker=trans.parent.parent.name)
        manifests[subset] = out_dir / f"{subset}.jsonl"
        write_manifest(manifests[subset], utts, relative=False)
    return manifests

"""Fetch and unpack corpus archives: resumable downloads, md5 checks, extraction that stays inside its folder.

    archive = download("https://www.openslr.org/resources/33/data_aishell.tgz", Path("downloads/data_aishell.tgz"),
                       md5="2f494334227864a8a8fec932999db9d8")
    extract(archive, Path("downloads"))

Shared by the corpus modules (:mod:`~speechseq.data.corpora.librispeech`, :mod:`~speechseq.data.corpora.aishell`).
Every failure is a :class:`~speechseq.errors.SpeechseqError` naming the URL or the file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from speechseq.errors import SpeechseqError


def md5sum(path: str | Path) -> str:
    """Hex md5 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, path: Path) -> None:
    """Fetch ``url`` to ``path`` through ``path.part``; an interrupted http(s) download resumes with a Range request.

    A server answers 416 (range not satisfiable) when the ``.part`` already holds the whole file: it is complete if
    its size equals the total in the reply's ``Content-Range: bytes */<total>``; otherwise (another size, or no total
    given) the ``.part`` is not a prefix we can trust and the file is fetched again from the start.
    """
    part = path.with_name(path.name + ".part")
    request = urllib.request.Request(url)
    have = part.stat().st_size if part.exists() else 0
    if have and url.startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have > 0 and getattr(response, "status", 200) == 206
            with open(part, "ab" if resumed else "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise SpeechseqError(f"{url}: download failed ({e}); run again to resume") from None
        total = re.fullmatch(r"bytes \*/(\d+)", (e.headers.get("Content-Range") or "").strip())
        if total is None or int(total.group(1)) != have:
            part.unlink()
            return _fetch(url, path)
    except (OSError, urllib.error.URLError) as e:
        raise SpeechseqError(f"{url}: download failed ({e}); run again to resume") from None
    part.replace(path)


def download(url: str, path: str | Path, md5: str | None = None) -> Path:
    """Download ``url`` to ``path`` unless that file is already there, then check its md5.

    The data goes to ``path.part`` first and is renamed when complete, so ``path`` never holds a partial file; a
    partial http(s) download continues where it stopped on the next call.

    Args:
        url: http(s) or ``file://`` URL.
        path: destination file (its folder is created).
        md5: expected hex digest, or None to skip the check.

    Returns:
        ``path``.

    Raises:
        SpeechseqError: download failure, or md5 mismatch (the file is then deleted so that a rerun fetches it again).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        _fetch(url, path)
    if md5 is not None:
        got = md5sum(path)
        if got != md5:
            path.unlink()
            raise SpeechseqError(f"{path}: md5 {got} != expected {md5} (deleted; download again)")
    return path


def extract(archive: str | Path, dest: str | Path) -> None:
    """Unpack a tar archive (any compression) into ``dest``.

    Members that would land outside ``dest`` (absolute paths, ``..``, links) are refused: with Python's ``data``
    extraction filter where available, else by an explicit check.

    Raises:
        SpeechseqError: a corrupt or truncated archive, or an unsafe member (the message names the archive).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python < 3.11.4: refuse members that would land outside dest
                root = dest.resolve()
                for member in tar.getmembers():
                    target = (dest / member.name).resolve()
                    if (target != root and root not in target.parents) or member.issym() or member.islnk():
                        raise SpeechseqError(f"{archive}: unsafe member {member.name!r}")
                tar.extractall(dest)
    except (tarfile.TarError, EOFError) as e:
        raise SpeechseqError(f"{archive}: cannot extract ({e}); delete it and download again") from None

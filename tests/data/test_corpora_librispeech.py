"""LibriSpeech preparation and download on a miniature tree (2 speakers x 3 utterances, tiny flacs)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from speechseq.bin.prepare import main
from speechseq.data.corpora.download import download
from speechseq.data.corpora.librispeech import download_librispeech, prepare_librispeech
from speechseq.data.manifest import read_manifest
from speechseq.errors import ConfigError, ManifestError, SpeechseqError

CHAPTERS = {("103", "1240"): ["CHAPTER ONE MISSUS RACHEL", "THAT HAD ITS SOURCE AWAY BACK", "FOR NOT EVEN A BROOK"],
            ("1988", "147956"): ["FUCHS BROUGHT UP A SACK", "SHE WAS A GOOD COOK", "AND HE'D SEEN IT ALL"]}


def _mini_tree(root: Path, subset: str = "dev-clean") -> Path:
    """root/LibriSpeech/<subset>/<spk>/<chapter>/ with a transcript and 3 flacs per speaker."""
    rng = np.random.default_rng(1)
    for (spk, chapter), texts in CHAPTERS.items():
        folder = root / "LibriSpeech" / subset / spk / chapter
        folder.mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            uid = f"{spk}-{chapter}-{i:04d}"
            sf.write(str(folder / f"{uid}.flac"), 0.1 * rng.standard_normal(1600 * (i + 1)), 16000, format="FLAC")
            lines.append(f"{uid} {text}")
        (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "LibriSpeech" / "README.TXT").write_text("mini\n")
    return root


def _archive(tmp_path: Path, subset: str = "dev-clean") -> Path:
    src = _mini_tree(tmp_path / "src", subset)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / f"{subset}.tar.gz", "w:gz") as tar:
        tar.add(src / "LibriSpeech", arcname="LibriSpeech")
    return mirror


def test_prepare_mini_tree(tmp_path: Path) -> None:
    root = _mini_tree(tmp_path / "corpus")
    manifests = prepare_librispeech(root, tmp_path / "out", ["dev-clean"])
    assert manifests == {"dev-clean": tmp_path / "out" / "dev-clean.jsonl"}
    utts = read_manifest(manifests["dev-clean"])
    assert [u.id for u in utts] == ["103-1240-0000", "103-1240-0001", "103-1240-0002",
                                    "1988-147956-0000", "1988-147956-0001", "1988-147956-0002"]
    assert utts[0].text == "chapter one missus rachel" and utts[5].text == "and he'd seen it all"
    assert [u.duration for u in utts[:3]] == pytest.approx([0.1, 0.2, 0.3])
    assert {u.speaker for u in utts} == {"103", "1988"} and {u.language for u in utts} == {"en"}
    assert Path(utts[4].audio).is_file() and Path(utts[4].audio).is_absolute()
    # the LibriSpeech folder itself and a comma string are accepted too
    again = prepare_librispeech(root / "LibriSpeech", tmp_path / "out2", "dev-clean")
    assert [u.id for u in read_manifest(again["dev-clean"])] == [u.id for u in utts]


def test_prepare_errors_name_file_and_line(tmp_path: Path) -> None:
    root = _mini_tree(tmp_path / "corpus")
    (root / "LibriSpeech" / "dev-clean" / "1988" / "147956" / "1988-147956-0001.flac").unlink()
    with pytest.raises(ManifestError, match=r"1988-147956\.trans\.txt:2: audio 1988-147956-0001\.flac not found"):
        prepare_librispeech(root, tmp_path / "out", ["dev-clean"])
    with pytest.raises(ManifestError, match="test-clean.*not found.*dev-clean"):
        prepare_librispeech(root, tmp_path / "out", ["test-clean"])
    trans = root / "LibriSpeech" / "dev-clean" / "103" / "1240" / "103-1240.trans.txt"
    trans.write_text(trans.read_text() + "garbage\n")
    with pytest.raises(ManifestError, match=r"103-1240\.trans\.txt:4"):
        prepare_librispeech(root, tmp_path / "out", ["dev-clean"])


def test_download_extract_resume_and_md5(tmp_path: Path) -> None:
    mirror = _archive(tmp_path)
    md5 = hashlib.md5((mirror / "dev-clean.tar.gz").read_bytes()).hexdigest()
    dest = tmp_path / "dl"
    with pytest.raises(SpeechseqError, match="md5"):
        download_librispeech(dest, ["dev-clean"], base_url=mirror.as_uri(), md5_sums={"dev-clean": "0" * 32})
    assert not (dest / "dev-clean.tar.gz").exists()  # a bad archive is removed
    assert download_librispeech(dest, ["dev-clean"], base_url=mirror.as_uri(),
                                md5_sums={"dev-clean": md5}) == dest
    assert (dest / "LibriSpeech" / "dev-clean" / ".complete").is_file()
    assert len(read_manifest(prepare_librispeech(dest, tmp_path / "out", ["dev-clean"])["dev-clean"])) == 6
    # extracted subsets are skipped: a dead mirror is never contacted
    download_librispeech(dest, ["dev-clean"], base_url=(tmp_path / "gone").as_uri())
    with pytest.raises(SpeechseqError, match="download failed"):
        download_librispeech(dest, ["dev-other"], base_url=(tmp_path / "gone").as_uri())
    with pytest.raises(ConfigError, match="dev_clean.*choices"):
        download_librispeech(dest, ["dev_clean"])


@contextlib.contextmanager
def _range_server(payload: bytes) -> Iterator[str]:
    """http://127.0.0.1:<port>/f serving ``payload`` with Range support (206, or 416 + ``bytes */size`` past it)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-")).group(1))
            if start >= len(payload) and "Range" in self.headers:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/f"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("part_size", [1000, 3000, 3500], ids=["partial", "complete", "too-long"])
def test_http_download_resumes_and_treats_416_on_a_complete_part_as_done(tmp_path: Path, part_size: int) -> None:
    # a .part holding the whole file makes the Range request fail with 416: that must not fail every rerun
    payload = np.random.default_rng(0).bytes(3000)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes((payload + b"x" * 500)[:part_size])
    with _range_server(payload) as url:
        assert download(url, dest, md5=hashlib.md5(payload).hexdigest()) == dest
    assert dest.read_bytes() == payload and not (tmp_path / "f.bin.part").exists()


def test_prepare_cli_librispeech(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = _archive(tmp_path)
    args = ["librispeech", "--out", str(tmp_path / "out"), "--root", str(tmp_path / "dl"), "--subsets", "dev-clean"]
    assert main(args + ["--download", "--base-url", mirror.as_uri(), "--no-md5-check"]) == 0
    assert re.search(r"dev-clean\s+6 utts\s+0\.000 h", capsys.readouterr().out)
    assert read_manifest(tmp_path / "out" / "dev-clean.jsonl")[2].text == "for not even a brook"
    assert main(args[:-1] + ["test-clean"]) == 2
    assert "test-clean" in capsys.readouterr().err


def test_prepare_cli_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _mini_tree(tmp_path / "a", "train-clean-100")
    _mini_tree(tmp_path / "a", "train-clean-360")
    out = tmp_path / "out"
    assert main(["librispeech", "--out", str(out), "--root", str(tmp_path / "a"), "--subsets",
                 "train-clean-100"]) == 0
    # same utterance ids in both miniature subsets: merging them is refused, naming the id
    assert main(["librispeech", "--out", str(tmp_path / "o2"), "--root", str(tmp_path / "a"), "--subsets",
                 "train-clean-360"]) == 0
    capsys.readouterr()
    assert main(["merge", "--out", str(out / "train.jsonl"), str(out / "train-clean-100.jsonl"),
                 str(tmp_path / "o2" / "train-clean-360.jsonl")]) == 2
    assert "103-1240-0000" in capsys.readouterr().err
    assert main(["merge", "--out", str(out / "train.jsonl"), str(out / "train-clean-100.jsonl")]) == 0
    assert re.search(r"train\s+6 utts", capsys.readouterr().out)
    merged = read_manifest(out / "train.jsonl")
    assert [u.audio for u in merged] == [u.audio for u in read_manifest(out / "train-clean-100.jsonl")]


def test_run_sh_stage0_uses_a_hand_extracted_tree_in_a_folder_with_spaces(tmp_path: Path) -> None:
    """egs/librispeech/asr/run.sh stage 0 on a tree extracted by hand (no .complete marker): prepared as it is, with
    no download attempt (none is possible here), and paths with spaces survive the recipe's eval."""
    import os
    import subprocess
    import sys

    root_dir = Path(__file__).resolve().parents[2]
    base = tmp_path / "my corpora"
    corpus = _mini_tree(base / "libri", "train-clean-100")
    _mini_tree(base / "other", "dev-clean")
    (base / "other" / "LibriSpeech" / "dev-clean").rename(corpus / "LibriSpeech" / "dev-clean")
    env = {**os.environ, "data": str(base / "data dir"), "exp": str(base / "exp dir"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([str(root_dir / "egs/librispeech/asr/run.sh"), "--corpus-dir", str(corpus), "--subsets",
                           "train-clean-100 dev-clean", "--stage", "0", "--stop-stage", "0"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(read_manifest(base / "data dir" / "train.jsonl")) == 6
    assert len(read_manifest(base / "data dir" / "dev-clean.jsonl")) == 6
    assert (base / "exp dir" / ".stage0.done").is_file()
    bad = subprocess.run([str(root_dir / "egs/librispeech/asr/run.sh"), "--corpus-dir", str(corpus), "--stage", "O"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--stage must be a stage number, got 'O'" in bad.stderr

"""AISHELL-1 preparation and download on a miniature release tree (4 speakers over train/dev/test, tiny wavs packed
in per-speaker archives as in data_aishell.tgz)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechseq.bin.prepare import main
from speechseq.data.corpora.aishell import download_aishell, prepare_aishell
from speechseq.data.manifest import read_manifest
from speechseq.errors import ManifestError, SpeechseqError

ROOT = Path(__file__).resolve().parents[2]
# split -> speaker -> transcripts as released (words separated by spaces)
SPEAKERS = {
    "train": {"S0002": ["今天 的 天气 很 好", "我们 一起 去 公园 散步", "他 买 了 三 本 书"],
              "S0003": ["这 家 店 的 面条 很 好吃", "请 把 窗户 关上", "会议 推迟 到 明天"]},
    "dev": {"S0724": ["火车 晚点 了 二十 分钟", "新 的 MP3 播放器 上市"]},
    "test": {"S0764": ["孩子们 在 操场 上 踢球", "价格 上涨 了 5 %"]},
}
NO_TRANSCRIPT = "BAC009S0003W0123"  # a wav with no transcript line: skipped
NO_AUDIO = "BAC009S0002W0999 这 一 行 没有 音频"  # a transcript line with no wav: ignored


def _uid(speaker: str, index: int) -> str:
    return f"BAC009{speaker}W{121 + index:04d}"


def _write_wavs(wav_root: Path) -> None:
    """wav_root/<split>/<speaker>/<id>.wav, utterance i of a speaker lasting (i + 1) / 10 s."""
    rng = np.random.default_rng(3)
    for split, speakers in SPEAKERS.items():
        for speaker, texts in speakers.items():
            folder = wav_root / split / speaker
            folder.mkdir(parents=True)
            for i in range(len(texts)):
                sf.write(str(folder / f"{_uid(speaker, i)}.wav"), 0.1 * rng.standard_normal(1600 * (i + 1)), 16000)


def _transcript_lines() -> list[str]:
    lines = [f"{_uid(spk, i)} {text}" for speakers in SPEAKERS.values() for spk, texts in speakers.items()
             for i, text in enumerate(texts) if _uid(spk, i) != NO_TRANSCRIPT]
    return lines + [NO_AUDIO]


def _mini_release(root: Path, packed: bool = True) -> Path:
    """root/data_aishell/{transcript,wav}; with ``packed``, wav/ holds <speaker>.tar.gz archives of
    <split>/<speaker>/*.wav (the release layout), else the unpacked wav/<split>/<speaker>/ folders."""
    base = root / "data_aishell"
    (base / "transcript").mkdir(parents=True)
    (base / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(_transcript_lines()) + "\n",
                                                                      encoding="utf-8")
    if not packed:
        _write_wavs(base / "wav")
        return root
    staging = root / "staging"
    _write_wavs(staging)
    (base / "wav").mkdir()
    for split, speakers in SPEAKERS.items():
        for speaker in speakers:
            with tarfile.open(base / "wav" / f"{speaker}.tar.gz", "w:gz") as tar:
                tar.add(staging / split / speaker, arcname=f"{split}/{speaker}")
    shutil.rmtree(staging)
    return root


def _expected(split: str) -> list[tuple[str, str, str, float]]:
    """(id, text without spaces, speaker, duration) of a split, in manifest order."""
    return [(_uid(spk, i), text.replace(" ", ""), spk, (i + 1) / 10) for spk, texts in SPEAKERS[split].items()
            for i, text in enumerate(texts) if _uid(spk, i) != NO_TRANSCRIPT]


def _check(manifests: dict[str, Path]) -> None:
    assert list(manifests) == ["train", "dev", "test"]
    for split, path in manifests.items():
        utts = read_manifest(path)
        assert [(u.id, u.text, u.speaker) for u in utts] == [e[:3] for e in _expected(split)]
        assert [u.duration for u in utts] == pytest.approx([e[3] for e in _expected(split)])
        assert {u.language for u in utts} == {"zh"}
        assert all(Path(u.audio).is_absolute() and Path(u.audio).is_file() for u in utts)
        assert all(Path(u.audio).parent.name == u.speaker and Path(u.audio).parent.parent.name == split
                   for u in utts)


def test_prepare_unpacks_speaker_archives(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _mini_release(tmp_path / "corpus")
    with caplog.at_level(logging.WARNING, logger="speechseq.data"):
        manifests = prepare_aishell(root, tmp_path / "out")
    assert manifests == {s: tmp_path / "out" / f"{s}.jsonl" for s in ("train", "dev", "test")}
    _check(manifests)
    train = {u.id: u.text for u in read_manifest(manifests["train"])}
    assert train["BAC009S0002W0121"] == "今天的天气很好" and NO_TRANSCRIPT not in train
    assert read_manifest(manifests["dev"])[1].text == "新的MP3播放器上市"  # latin letters and digits kept
    assert re.search(r"train: 1 of 6 wavs have no line in .*aishell_transcript_v0\.8\.txt; skipped", caplog.text)
    wav = root / "data_aishell" / "wav"
    assert sorted(p.name for p in wav.glob(".*.extracted")) == [
        ".S0002.tar.gz.extracted", ".S0003.tar.gz.extracted", ".S0724.tar.gz.extracted", ".S0764.tar.gz.extracted"]
    assert (wav / "train" / "S0003" / f"{NO_TRANSCRIPT}.wav").is_file()


def test_prepare_is_idempotent(tmp_path: Path) -> None:
    root = _mini_release(tmp_path / "corpus")
    first = {s: p.read_text(encoding="utf-8") for s, p in prepare_aishell(root, tmp_path / "out").items()}
    # the markers keep archives from being opened again: a now-corrupt archive goes unnoticed
    (root / "data_aishell" / "wav" / "S0002.tar.gz").write_bytes(b"not a tar file")
    again = prepare_aishell(root / "data_aishell", tmp_path / "out")  # the data_aishell folder itself works too
    assert {s: p.read_text(encoding="utf-8") for s, p in again.items()} == first


def test_prepare_unpacked_tree_and_archives_per_split(tmp_path: Path) -> None:
    _check(prepare_aishell(_mini_release(tmp_path / "unpacked", packed=False), tmp_path / "out1"))
    # archives inside wav/<split>/ holding <speaker>/*.wav unpack into that split folder
    root = _mini_release(tmp_path / "per_split", packed=False)
    wav = root / "data_aishell" / "wav"
    for split, speakers in SPEAKERS.items():
        for speaker in speakers:
            with tarfile.open(wav / split / f"{speaker}.tar.gz", "w:gz") as tar:
                tar.add(wav / split / speaker, arcname=speaker)
            shutil.rmtree(wav / split / speaker)
    _check(prepare_aishell(root, tmp_path / "out2"))
    assert (wav / "dev" / ".S0724.tar.gz.extracted").is_file()


def test_prepare_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=re.escape(str(tmp_path / "nowhere")) + ": not an AISHELL-1 folder"):
        prepare_aishell(tmp_path / "nowhere", tmp_path / "out")
    root = _mini_release(tmp_path / "corpus", packed=False)
    base = root / "data_aishell"
    shutil.rmtree(base / "wav" / "test")
    with pytest.raises(ManifestError, match=r"wav/test: split folder not found \(found in .*: dev, train\)"):
        prepare_aishell(root, tmp_path / "out")
    transcript = base / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.write_text(transcript.read_text(encoding="utf-8") + "BAC009S0002W0500\n", encoding="utf-8")
    lineno = len(_transcript_lines()) + 1
    with pytest.raises(ManifestError, match=rf"aishell_transcript_v0\.8\.txt:{lineno}: expected '<id> <text>'"):
        prepare_aishell(root, tmp_path / "out")
    transcript.unlink()
    with pytest.raises(ManifestError, match=r"aishell_transcript_v0\.8\.txt: AISHELL-1 transcript not found"):
        prepare_aishell(root, tmp_path / "out")


def _mirror(tmp_path: Path) -> tuple[Path, str]:
    """A folder holding a tiny data_aishell.tgz, and that archive's md5."""
    src = _mini_release(tmp_path / "src")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "data_aishell.tgz", "w:gz") as tar:
        tar.add(src / "data_aishell", arcname="data_aishell")
    return mirror, hashlib.md5((mirror / "data_aishell.tgz").read_bytes()).hexdigest()


def test_download_md5_extract_and_skip(tmp_path: Path) -> None:
    mirror, md5 = _mirror(tmp_path)
    dest = tmp_path / "dl"
    with pytest.raises(SpeechseqError, match="md5"):
        download_aishell(dest, base_url=mirror.as_uri())  # the real md5 does not match the tiny archive
    assert not (dest / "data_aishell.tgz").exists()  # a bad archive is removed
    assert download_aishell(dest, base_url=mirror.as_uri(), md5=md5) == dest
    assert (dest / "data_aishell" / ".complete").is_file() and (dest / "data_aishell.tgz").is_file()
    _check(prepare_aishell(dest, tmp_path / "out"))
    # a completed download is skipped: a dead mirror is never contacted
    download_aishell(dest, base_url=(tmp_path / "gone").as_uri())
    with pytest.raises(SpeechseqError, match="download failed"):
        download_aishell(tmp_path / "dl2", base_url=(tmp_path / "gone").as_uri())


def test_prepare_cli_aishell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror, _ = _mirror(tmp_path)
    out = tmp_path / "out"
    args = ["aishell", "--out", str(out), "--root", str(tmp_path / "dl")]
    assert main(args + ["--download", "--base-url", mirror.as_uri(), "--no-md5-check"]) == 0
    printed = capsys.readouterr().out
    for split, count in (("train", 5), ("dev", 2), ("test", 2)):
        assert re.search(rf"{split}\s+{count} utts\s+0\.000 h\s+{re.escape(str(out / split))}\.jsonl", printed)
    assert read_manifest(out / "test.jsonl")[1].text == "价格上涨了5%"
    assert main(["aishell", "--out", str(out), "--root", str(tmp_path / "missing")]) == 2
    assert f"{tmp_path / 'missing'}: not an AISHELL-1 folder" in capsys.readouterr().err


def test_run_sh_stage0_prepares_data(tmp_path: Path) -> None:
    root = _mini_release(tmp_path / "corpus")
    env = {**os.environ, "data": str(tmp_path / "data"), "exp": str(tmp_path / "exp"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([str(ROOT / "egs/aishell/asr/run.sh"), "--corpus-dir", str(root), "--stage", "0",
                           "--stop-stage", "0"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    _check({s: tmp_path / "data" / f"{s}.jsonl" for s in ("train", "dev", "test")})
    assert (tmp_path / "exp" / ".stage0.done").is_file()
    assert not (root / "data_aishell.tgz").exists()  # an extracted tree by hand is used as is, not downloaded

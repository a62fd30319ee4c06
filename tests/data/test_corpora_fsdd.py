"""FSDD preparation: the shared copy, the upstream layout, the file:// zip download and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechseq.bin.prepare import main
from speechseq.data.corpora.fsdd import download_fsdd, prepare_fsdd
from speechseq.data.manifest import read_manifest
from speechseq.errors import ConfigError, ManifestError

ROOT = Path(__file__).resolve().parents[2]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _upstream_tree(root: Path, speakers: tuple[str, ...] = ("alice", "bob", "carol"), digits: int = 3,
                   takes: int = 2) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for spk in speakers:
        for d in range(digits):
            for n in range(takes):
                num_samples = 2000 + 400 * d + 40 * n
                sf.write(str(rec / f"{d}_{spk}_{n}.wav"), 0.1 * rng.standard_normal(num_samples), 8000,
                         subtype="PCM_16")
    return root


def test_shared_copy_speaker_disjoint_and_complete(tmp_path: Path) -> None:
    manifests = prepare_fsdd(FSDD, tmp_path)
    utts = {s: read_manifest(p) for s, p in manifests.items()}
    speakers = {s: {u.speaker for u in us} for s, us in utts.items()}
    train_speakers = {"fsdd_jackson", "fsdd_nicolas", "fsdd_theo"}
    assert speakers == {"train": train_speakers, "dev": train_speakers, "test": {"fsdd_yweweler"}}
    assert len(utts["dev"]) == 150 and len(utts["train"]) == 1350 and len(utts["test"]) == 500
    assert not {u.id for u in utts["dev"]} & {u.id for u in utts["train"]}
    all_ids = [u.id for us in utts.values() for u in us]
    assert len(all_ids) == len(set(all_ids)) == 2000
    originals = {json.loads(line)["id"] for line in (FSDD / "manifest.jsonl").read_text().splitlines()}
    assert set(all_ids) == originals
    for us in utts.values():
        for u in us:
            assert Path(u.audio).is_absolute() and Path(u.audio).parent == FSDD / "audio"
            assert u.text in WORDS and u.language == "en" and u.duration > 0
    assert all(Path(u.audio).is_file() for u in utts["test"])
    assert not list(tmp_path.rglob("*.wav"))  # audio is never copied


def test_explicit_speakers_and_errors(tmp_path: Path) -> None:
    manifests = prepare_fsdd(FSDD, tmp_path, test_speakers=("jackson",), dev_speakers=("fsdd_nicolas", "theo"))
    assert {u.speaker for u in read_manifest(manifests["train"])} == {"fsdd_yweweler"}
    assert len(read_manifest(manifests["dev"])) == 1000
    with pytest.raises(ConfigError, match="unknown speaker 'george'"):
        prepare_fsdd(FSDD, tmp_path, test_speakers=("george",))
    with pytest.raises(ConfigError, match="both"):
        prepare_fsdd(FSDD, tmp_path, test_speakers=("theo",), dev_speakers=("theo",))
    with pytest.raises(ConfigError, match="non-empty train"):
        prepare_fsdd(FSDD, tmp_path, test_speakers=("theo", "jackson"), dev_speakers=("nicolas", "yweweler"))
    with pytest.raises(ManifestError, match="recordings"):
        prepare_fsdd(tmp_path / "nothing", tmp_path)


def test_upstream_layout(tmp_path: Path) -> None:
    root = _upstream_tree(tmp_path / "fsdd")
    manifests = prepare_fsdd(root, tmp_path / "out", dev_speakers=("bob",))
    test = read_manifest(manifests["test"])
    assert {u.speaker for u in test} == {"fsdd_carol"}
    assert {u.speaker for u in read_manifest(manifests["dev"])} == {"fsdd_bob"}
    train = read_manifest(manifests["train"])
    assert [u.id for u in train] == [f"fsdd_{d}_alice_{n}" for d in range(3) for n in range(2)]
    assert [u.text for u in train] == ["zero", "zero", "one", "one", "two", "two"]
    assert train[3].duration == pytest.approx((2000 + 400 + 40) / 8000)
    assert train[3].audio == str((root / "recordings" / "1_alice_1.wav").resolve())
    (root / "recordings" / "notes.wav").write_bytes(b"")
    with pytest.raises(ManifestError, match="notes.wav"):
        prepare_fsdd(root, tmp_path / "out")


def _release_zip(tmp_path: Path) -> Path:
    tree = _upstream_tree(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", speakers=("ann", "ben", "cid"),
                          digits=2, takes=1)
    (tree / "README.md").write_text("FSDD\n")
    archive = tmp_path / "v1.0.10.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "src"))
    return archive


def test_download_from_file_url(tmp_path: Path) -> None:
    archive = _release_zip(tmp_path)
    root = download_fsdd(tmp_path / "dl", url=archive.as_uri())
    assert root == tmp_path / "dl" / "free-spoken-digit-dataset-1.0.10"
    assert len(list((root / "recordings").glob("*.wav"))) == 6
    archive.unlink()  # a second call must not fetch again
    assert download_fsdd(tmp_path / "dl", url=archive.as_uri()) == root
    manifests = prepare_fsdd(root, tmp_path / "out")
    assert sum(len(read_manifest(p)) for p in manifests.values()) == 6


def test_prepare_cli_fsdd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = _release_zip(tmp_path)
    out = tmp_path / "out"
    assert main(["fsdd", "--out", str(out), "--download", str(tmp_path / "dl"), "--url", archive.as_uri()]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"train\s+4 utts", printed) and re.search(r"test\s+2 utts", printed)
    assert main(["fsdd", "--out", str(out), "--data-dir", str(FSDD), "--test-speakers", "theo"]) == 0
    assert re.search(r"test\s+500 utts\s+0\.0\d+ h", capsys.readouterr().out)
    assert main(["fsdd", "--out", str(out), "--data-dir", str(FSDD), "--test-speakers", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert main(["fsdd", "--out", str(out), "--data-dir", str(FSDD), "--synth-variants", "2"]) == 2
    assert "--synth-variants needs --synth-digits" in capsys.readouterr().err


def test_extra_train_voices_join_train_only(tmp_path: Path) -> None:
    from speechseq.data.manifest import Utterance, write_manifest

    wav = tmp_path / "x.wav"
    sf.write(str(wav), np.zeros(800), 8000, subtype="PCM_16")
    extra = tmp_path / "digits.jsonl"
    write_manifest(extra, [Utterance(id=f"tts-{w}", audio=str(wav), text=w, duration=0.1, speaker="flite-awb")
                           for w in WORDS])
    manifests = prepare_fsdd(FSDD, tmp_path / "out", extra_train=(extra,))
    train = read_manifest(manifests["train"])
    assert len(train) == 1360 and {u.speaker for u in train} == {"fsdd_jackson", "fsdd_nicolas", "fsdd_theo",
                                                                 "flite-awb"}
    assert "flite-awb" not in {u.speaker for p in (manifests["dev"], manifests["test"]) for u in read_manifest(p)}
    write_manifest(extra, [Utterance(id="bad", audio=str(wav), text="one", duration=0.1, speaker="fsdd_yweweler")])
    with pytest.raises(ConfigError, match="fsdd_yweweler"):
        prepare_fsdd(FSDD, tmp_path / "out", extra_train=(extra,))


@pytest.mark.parametrize("synth", [True, False])
def test_run_sh_stage0_with_and_without_synthetic_digits(tmp_path: Path, synth: bool) -> None:
    env = {**os.environ, "data": str(tmp_path / "data"), "exp": str(tmp_path / "exp"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    flags = [] if synth else ["--no-synth-digits", "--test-speakers", "theo"]
    proc = subprocess.run([str(ROOT / "egs/fsdd/asr/run.sh"), "--data-dir", str(FSDD), *flags, "--stage", "0",
                           "--stop-stage", "0"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    train = read_manifest(tmp_path / "data" / "train.jsonl")
    synthetic = [u for u in train if not u.speaker.startswith("fsdd_")]
    assert len(train) == 1350 + len(synthetic)
    if synth:  # every installed voice (espeak-ng, flite, festival + variants) says every digit, at 8 kHz
        assert len(synthetic) >= 250 and len(synthetic) % 10 == 0
        assert {u.text for u in synthetic} == set(WORDS)
        assert {u.speaker.split("-")[0] for u in synthetic} == {"espeak", "flite", "festival"}
        assert sf.info(synthetic[0].audio).samplerate == 8000
    else:
        assert not synthetic
    held_out = "fsdd_yweweler" if synth else "fsdd_theo"
    assert {u.speaker for u in read_manifest(tmp_path / "data" / "test.jsonl")} == {held_out}


def test_fsdd_speakers_both_layouts(tmp_path: Path) -> None:
    from speechseq.data.corpora.fsdd import fsdd_speakers

    assert fsdd_speakers(FSDD) == ["fsdd_jackson", "fsdd_nicolas", "fsdd_theo", "fsdd_yweweler"]
    assert fsdd_speakers(_upstream_tree(tmp_path)) == ["fsdd_alice", "fsdd_bob", "fsdd_carol"]


def test_cv_sh_holds_out_every_speaker_and_pools_the_folds(tmp_path: Path) -> None:
    """Leave-one-speaker-out over a 3-speaker tree of real FSDD recordings (debug model, 2 training steps): one fold
    per speaker, each with that speaker alone as test, and a pooled row = all errors / all words of the folds."""
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for spk in ("jackson", "nicolas", "theo"):
        for d in range(10):
            (rec / f"{d}_{spk}_0.wav").symlink_to(FSDD / "audio" / f"fsdd_{d}_{spk}_0.wav")
    env = {**os.environ, "data_root": str(tmp_path / "data"), "exp_root": str(tmp_path / "exp"),
           "config": str(ROOT / "recipes/conf/debug/ctc_debug.yaml"), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run([str(ROOT / "egs/fsdd/asr/cv.sh"), "--data-dir", str(tmp_path / "fsdd"), "--no-synth-digits",
                           "--lm-order", "0", "--decode-methods", "greedy", "--seeds", "1", "--train-args",
                           "train.max_steps=2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summaries = []
    for spk in ("jackson", "nicolas", "theo"):
        fold = tmp_path / "data" / f"cv_{spk}"
        assert {u.speaker for u in read_manifest(fold / "test.jsonl")} == {f"fsdd_{spk}"}
        trained = {u.speaker for split in ("train", "dev") for u in read_manifest(fold / f"{split}.jsonl")}
        assert trained == {"fsdd_jackson", "fsdd_nicolas", "fsdd_theo"} - {f"fsdd_{spk}"}
        summaries.append(json.loads((tmp_path / "exp" / f"ctc_cv_{spk}" / "decode_test_greedy" / "summary.json")
                                    .read_text()))
    errors = sum(s["substitutions"] + s["deletions"] + s["insertions"] for s in summaries)
    pooled = [line for line in proc.stdout.splitlines() if line.startswith("| pooled over 3 | greedy | 30 |")]
    assert len(pooled) == 1 and pooled[0].split("|")[4].strip() == f"{100 * errors / 30:.2f}"
    table = proc.stdout.strip().splitlines()[-6:]  # the final table: header, rule, one row per fold, pooled
    assert [row.split("|")[1].strip() for row in table[2:5]] == [
        f"ctc_cv_{spk}/decode_test_greedy" for spk in ("jackson", "nicolas", "theo")]
    assert table[5] == pooled[0]

"""Bad inputs give one clear error naming the file, line or key at fault, never a traceback from deep inside torch.

Covers the Python API (``Recognizer.transcribe``, ``train_asr``) and the command line
(``python -m speechseq.bin.decode``, ``python -m speechseq.cli train``), whose ``__main__`` turns a SpeechseqError
into ``error: <message>`` and exit status 2. The command-line processes are started together in one fixture so that their start-up (importing torch)
overlaps.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speechseq
from speechseq.audio.io import resample
from speechseq.config import load_config
from speechseq.errors import AudioError, SpeechseqError
from speechseq.infer.recognizer import Recognizer, Transcript
from speechseq.train.asr import AsrExperimentConfig, train_asr

ROOT = Path(__file__).resolve().parents[1]
DEBUG = ROOT / "recipes" / "conf" / "debug" / "ctc_debug.yaml"
BAD_KINDS = ("missing", "garbage", "empty", "nan")


def write_bad_wavs(folder: Path) -> dict[str, Path]:
    """One file per kind of bad audio: missing, random bytes, 0 samples, a NaN sample (float WAV)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / f"bad_{kind}.wav" for kind in BAD_KINDS}
    paths["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    sf.write(paths["empty"], np.zeros(0, np.float32), 8000)
    wave = np.full(4000, 0.1, np.float32)
    wave[1234] = np.nan
    sf.write(paths["nan"], wave, 8000, subtype="FLOAT")
    return paths


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, fsdd_tiny) -> Path:
    """The debug model after a few steps (its hypotheses do not matter here)."""
    exp = tmp_path_factory.mktemp("bad_input") / "exp"
    cfg = load_config(DEBUG, AsrExperimentConfig, ["train.max_steps=4", "train.checkpoint_every=2"])
    train_asr(cfg, exp, fsdd_tiny["train"], None, device="cpu")
    return exp


@pytest.fixture(scope="module")
def asr(model_dir) -> Recognizer:
    return speechseq.load_asr(model_dir)


@pytest.fixture(scope="module")
def bad_wavs(tmp_path_factory) -> dict[str, Path]:
    return write_bad_wavs(tmp_path_factory.mktemp("bad_wavs"))


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, model_dir, bad_wavs, fsdd_tiny) -> dict[str, tuple[int, str, str]]:
    """Start every command-line case at once; returns name -> (exit status, stdout, stderr)."""
    tmp = tmp_path_factory.mktemp("bad_cli")
    commands: dict[str, list[str]] = {}
    for kind, wav in bad_wavs.items():
        manifest = write_manifest(tmp / f"{kind}.jsonl", [{"id": f"u_{kind}", "audio": str(wav), "text": "one"}])
        commands[f"decode_{kind}"] = ["-m", "speechseq.bin.decode", "--model-dir", str(model_dir), "--manifest",
                                      str(manifest), "--out", str(tmp / f"decode_{kind}")]
    rows = [json.loads(line) for line in fsdd_tiny["train"].read_text().splitlines()[:3]]
    del rows[1]["text"]
    no_text = write_manifest(tmp / "no_text.jsonl", rows)
    commands["train_no_text"] = ["-m", "speechseq.cli", "train", "--config", str(DEBUG), "--exp", str(tmp / "exp"),
                                 "--train", str(no_text), "--device", "cpu", "train.max_steps=1"]
    commands["unknown_key"] = ["-m", "speechseq.cli", "train", "--config", str(DEBUG), "--print-config",
                               "model.encoder.num_layer=3"]
    procs = {name: subprocess.Popen([sys.executable, *args], cwd=tmp, env=subprocess_env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in commands.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return results


def assert_clean_failure(result: tuple[int, str, str], *needles: str) -> None:
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # exactly one line
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_transcribe_bad_file_names_it(asr, bad_wavs, kind):
    with pytest.raises(AudioError) as info:
        asr.transcribe(str(bad_wavs[kind]))
    assert str(bad_wavs[kind]) in str(info.value)
    expected = {"missing": "no such file", "garbage": "cannot decode", "empty": "no samples", "nan": "NaN"}[kind]
    assert expected in str(info.value)


def test_transcribe_list_with_a_bad_file_names_that_file(asr, bad_wavs, fsdd_tiny):
    good = json.loads(fsdd_tiny["train"].read_text().splitlines()[0])["audio"]
    with pytest.raises(AudioError, match=bad_wavs["nan"].name):
        asr.transcribe([good, str(bad_wavs["nan"]), good])


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_decode_cli_bad_file_exits_2_naming_it(cli_runs, bad_wavs, kind):
    assert_clean_failure(cli_runs[f"decode_{kind}"], bad_wavs[kind].name)


def test_train_cli_manifest_line_without_text(cli_runs):
    assert_clean_failure(cli_runs["train_no_text"], "no_text.jsonl:2", "'text'")


def test_print_config_unknown_key_suggests_the_name(cli_runs):
    code, out, err = cli_runs["unknown_key"]
    assert_clean_failure((code, out, err), "model.encoder.num_layer", "num_layers")
    assert out == ""  # nothing printed before the error


@pytest.mark.parametrize("wave, expected", [
    (np.zeros((2, 3, 400), np.float32), "shape"),
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((0, 1), np.float32), "empty"),
    (np.array([0.0, np.inf, 0.0] * 400, np.float32), "NaN or Inf"),
])
def test_transcribe_bad_array(asr, wave, expected):
    with pytest.raises(AudioError, match=expected):
        asr.transcribe((wave, 8000))
    good = (np.zeros(4000, np.float32), 8000)
    with pytest.raises(AudioError, match=r"inputs\[1\]"):  # in a list, the message says which item
        asr.transcribe([good, (wave, 8000)])


def test_transcribe_bad_arguments(asr):
    wave = (np.zeros(4000, np.float32), 8000)
    with pytest.raises(SpeechseqError, match="greedy, beam"):
        asr.transcribe(wave, method="attention")
    with pytest.raises(SpeechseqError, match="batch_size"):
        asr.transcribe(wave, batch_size=0)
    with pytest.raises(AudioError, match="sample rate"):
        asr.transcribe((np.zeros(4000, np.float32), 0))
    with pytest.raises(SpeechseqError, match="int"):
        asr.transcribe(12345)


def test_other_sample_rates_are_resampled_not_rejected(asr, fsdd_tiny):
    path = json.loads(fsdd_tiny["train"].read_text().splitlines()[0])["audio"]
    wave, sr = sf.read(path, dtype="float32")
    assert sr == 8000 != asr.sample_rate
    from_file = asr.transcribe(path)
    assert len(from_file) == 1 and isinstance(from_file[0], Transcript)
    for rate in (16000, 22050, 44100):
        assert asr.transcribe((resample(wave, sr, rate), rate))[0].text == from_file[0].text


def test_too_short_clip_gives_empty_text_not_a_conv_error(asr):
    for num_samples in (1, 10, 300):
        out = asr.transcribe((np.full(num_samples, 0.1, np.float32), 8000), word_timestamps=True)
        assert out[0].text == "" and out[0].tokens == [] and out[0].words == []


def test_training_skips_a_corrupt_file_and_names_it(tmp_path, fsdd_tiny, caplog):
    rows = [json.loads(line) for line in fsdd_tiny["train"].read_text().splitlines()[:6]]
    corrupt = tmp_path / "corrupt_digit.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    rows.insert(2, {"id": "corrupt", "audio": str(corrupt), "text": "two", "duration": 0.5})
    manifest = write_manifest(tmp_path / "train.jsonl", rows)
    cfg = load_config(DEBUG, AsrExperimentConfig, ["train.max_steps=2", "train.checkpoint_every=1"])
    with caplog.at_level(logging.WARNING, logger="speechseq.data"):
        result = train_asr(cfg, tmp_path / "exp", manifest, None, device="cpu")
    assert result.steps == 2 and result.model_path.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(corrupt) in w for w in warnings), warnings

"""The ``speechseq`` command line, run as ``python -m speechseq.cli <command>`` subprocesses.

The commands that load the model (decode greedy/beam, align, average) are started together in one fixture so their
start-up (importing torch) overlaps; each test then checks one command's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechseq.config import load_config
from speechseq.data.manifest import read_manifest
from speechseq.errors import SpeechseqError
from speechseq.train import checkpoint as ckpt
from speechseq.train.asr import AsrExperimentConfig, train_asr

ROOT = Path(__file__).resolve().parents[1]
DEBUG = ROOT / "recipes" / "conf" / "debug" / "ctc_debug.yaml"
COMMANDS = ("prepare", "tokenizer", "lm", "train", "decode", "score", "align", "pseudolabel", "average")


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def speechseq_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechseq.cli", *args], cwd=cwd or ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory, fsdd_tiny) -> Path:
    """The debug model trained for 4 steps (checkpoints at steps 2 and 4, model.pt averages both)."""
    exp = tmp_path_factory.mktemp("cli") / "ctc_debug"
    cfg = load_config(DEBUG, AsrExperimentConfig, ["train.max_steps=4", "train.checkpoint_every=2",
                                                   "train.average_last=2"])
    train_asr(cfg, exp, fsdd_tiny["train"], None, device="cpu")
    return exp


@pytest.fixture(scope="module")
def runs(exp_dir, fsdd_tiny, tmp_path_factory) -> dict:
    """Start decode (greedy, beam), align and average together; returns name -> CompletedProcess-like tuple."""
    tmp = tmp_path_factory.mktemp("cli_runs")
    averaged = tmp / "averaged_exp"
    averaged.mkdir()
    shutil.copytree(exp_dir / "checkpoints", averaged / "checkpoints")  # no model.pt: `average` must write it
    dev = str(fsdd_tiny["dev"])
    commands = {
        "greedy": ["decode", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(exp_dir / "decode_greedy")],
        "beam": ["decode", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(exp_dir / "decode_beam"),
                 "--method", "beam", "--beam-size", "3", "--batch-size", "4"],
        "int8": ["decode", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(exp_dir / "decode_int8"),
                 "--int8"],
        "bf16": ["decode", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(exp_dir / "decode_bf16"),
                 "--bf16"],
        "vtln": ["decode", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(exp_dir / "decode_vtln"),
                 "--warps", "0.9,1,1.1"],
        "align": ["align", "--model-dir", str(exp_dir), "--manifest", dev, "--out", str(tmp / "align.jsonl")],
        "average": ["average", "--exp", str(averaged), "--last", "2"],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "speechseq.cli", *args], cwd=tmp, env=subprocess_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in commands.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err)
    return {"results": results, "align": tmp / "align.jsonl", "averaged": averaged}


def test_help_lists_every_command():
    r = speechseq_cli("--help")
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    assert speechseq_cli().returncode == 2  # no command: usage, status 2


def test_unknown_command_exits_2_with_the_choices():
    r = speechseq_cli("trian")
    assert r.returncode == 2
    assert "unknown command 'trian'" in r.stderr
    assert all(name in r.stderr for name in COMMANDS)
    assert "Traceback" not in r.stderr


def test_subcommand_help_names_the_subcommand():
    r = speechseq_cli("score", "--help")
    assert r.returncode == 0 and "speechseq score" in r.stdout and "--table" in r.stdout


def test_score_hyp_prints_the_wer(tmp_path):
    rows = [{"id": "a", "ref": "one two three", "hyp": "one too three"},  # 1 substitution
            {"id": "b", "ref": "four five", "hyp": "four"},                 # 1 deletion
            {"id": "c", "ref": "six", "hyp": "six seven"}]                  # 1 insertion
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = speechseq_cli("score", "--hyp", str(hyp))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("WER 50.00% (1 sub, 1 del, 1 ins of 6 words, 3 utts)"), r.stdout


def test_pooled_rows_sum_errors_over_words_and_keep_the_mwer_model_apart():
    from speechseq.bin.score import pooled_rows

    def summary(model_dir, errors, words, lm=False):
        s = {"model_dir": model_dir, "method": "beam" if lm else "greedy", "beam_size": 10 if lm else 1,
             "utterances": words, "audio_s": audio_s, "rtf": rtf, "substitutions": errors, "deletions": 1,
             "insertions": 0, "ref_words": words}
        return {**s, "lm": "lm.arpa", "lm_weight": 0.6, "lm_bonus": 1.5} if lm else s

    audio_s, rtf = 2.0, 0.01
    first = summary("exp/a", 3, 10)
    audio_s, rtf = 6.0, 0.03
    rows = pooled_rows([first, summary("exp/b", 0, 30), summary("exp/a/mwer", 9, 10),
                        summary("exp/a", 1, 10, lm=True)]).splitlines()
    # greedy: WER (3 + 1 + 0 + 1) / 40 words, RTF (0.01 * 2 + 0.03 * 6) / 8 s; the MWER model and the LM rows apart
    assert [[c.strip() for c in r.split("|")[1:-1]] for r in rows] == [
        ["pooled over 2", "greedy", "40", "12.50", "-", "3", "2", "0", "0.0250"],
        ["pooled over 1", "MWER model, greedy", "10", "100.00", "-", "9", "1", "0", "0.0300"],
        ["pooled over 1", "beam (beam 10) + LM (weight 0.6, bonus 1.5)", "10", "20.00", "-", "1", "1", "0", "0.0300"]]



def test_pooled_rows_refuse_one_manifest_decoded_twice_with_a_method():
    from speechseq.bin.score import pooled_rows

    def summary(model_dir, manifest):
        return {"model_dir": model_dir, "manifest": manifest, "method": "greedy", "beam_size": 1, "utterances": 10,
                "audio_s": 1.0, "rtf": 0.01, "substitutions": 1, "deletions": 0, "insertions": 0, "ref_words": 10}

    folds = [summary("exp/cv_a", "data/cv_a/test.jsonl"), summary("exp/cv_b", "data/cv_b/test.jsonl")]
    assert pooled_rows(folds).startswith("| pooled over 2 | greedy | 20 | 10.00 |")
    with pytest.raises(SpeechseqError, match=r"data/cv_a/test\.jsonl is decoded with greedy by both exp/cv_a and "
                                             r"exp/other; pooling would count its utterances twice"):
        pooled_rows([*folds, summary("exp/other", "data/cv_a/test.jsonl")])

def test_score_without_arguments_is_a_usage_error():
    r = speechseq_cli("score")
    assert r.returncode == 2 and "give --hyp or --table" in r.stderr


def test_decode_writes_hyps_and_summary_and_score_tabulates(runs, exp_dir, fsdd_tiny):
    dev = read_manifest(fsdd_tiny["dev"])
    for name in ("greedy", "beam", "int8", "bf16"):
        code, out, err = runs["results"][name]
        assert code == 0, err
        assert f"{len(dev)} utts" in out and "RTF" in out
        summary = json.loads((exp_dir / f"decode_{name}" / "summary.json").read_text())
        assert {"wer", "cer", "rtf", "utterances", "audio_s"} <= summary.keys()
        assert summary["utterances"] == len(dev) and summary["method"] == ("beam" if name == "beam" else "greedy")
        assert summary.get("int8", False) == (name == "int8") and summary.get("bf16", False) == (name == "bf16")
        assert summary["rtf"] > 0 and summary["wer"] >= 0 and summary["cer"] >= 0
        assert summary["audio_s"] == pytest.approx(sum(u.duration for u in dev), abs=0.05)
        hyps = [json.loads(line) for line in (exp_dir / f"decode_{name}" / "hyp.jsonl").read_text().splitlines()]
        assert [h["id"] for h in hyps] == [u.id for u in dev]
        assert [h["ref"] for h in hyps] == [u.text for u in dev]
    r = speechseq_cli("score", "--table", str(exp_dir / "decode_greedy" / "summary.json"),
                      str(exp_dir / "decode_beam" / "summary.json"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("| decode | method |") and set(lines[1]) <= set("|-")
    assert len(lines) == 4
    greedy = json.loads((exp_dir / "decode_greedy" / "summary.json").read_text())
    assert lines[2].startswith(f"| {exp_dir.name}/decode_greedy | greedy | {len(dev)} | {100 * greedy['wer']:.2f} |")
    assert "| beam (beam 3) |" in lines[3]


def test_decode_with_test_time_warps_records_each_utterances_factor(runs, exp_dir, fsdd_tiny, tmp_path):
    code, out, err = runs["results"]["vtln"]
    assert code == 0, err
    summary = json.loads((exp_dir / "decode_vtln" / "summary.json").read_text())
    assert summary["warps"] == [0.9, 1.0, 1.1]
    hyps = [json.loads(line) for line in (exp_dir / "decode_vtln" / "hyp.jsonl").read_text().splitlines()]
    assert len(hyps) == len(read_manifest(fsdd_tiny["dev"])) and {h["warp"] for h in hyps} <= {0.9, 1.0, 1.1}
    greedy = [json.loads(line) for line in (exp_dir / "decode_greedy" / "hyp.jsonl").read_text().splitlines()]
    assert all("warp" not in h for h in greedy)
    assert [h["hyp"] for h in hyps if h["warp"] == 1.0] == [g["hyp"] for g, h in zip(greedy, hyps) if h["warp"] == 1.0]
    table = speechseq_cli("score", "--table", str(exp_dir / "decode_vtln" / "summary.json"))
    assert "| greedy + VTLN (3 warps) |" in table.stdout, table.stdout
    r = speechseq_cli("decode", "--model-dir", str(exp_dir), "--manifest", str(fsdd_tiny["dev"]), "--out",
                      str(tmp_path / "bad"), "--warps", "1,-0.9")
    assert r.returncode == 2 and "warp factors must be positive numbers, got '1,-0.9'" in r.stderr
    assert not (tmp_path / "bad").exists()
    # one factor per manifest speaker: the dev digits relabelled as two speakers
    rows = [json.loads(line) for line in fsdd_tiny["dev"].read_text().splitlines()]
    two = tmp_path / "two_speakers.jsonl"
    two.write_text("".join(json.dumps({**r, "speaker": f"s{i % 2}"}) + "\n" for i, r in enumerate(rows)))
    r = speechseq_cli("decode", "--model-dir", str(exp_dir), "--manifest", str(two), "--out",
                      str(tmp_path / "spk"), "--warps", "0.9,1,1.1", "--warp-by", "speaker")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "spk" / "summary.json").read_text())
    assert summary["warp_by"] == "speaker" and summary["warps"] == [0.9, 1.0, 1.1]
    spk_of = {u.id: u.speaker for u in read_manifest(two)}
    by_spk: dict[str, set[float]] = {}
    for line in (tmp_path / "spk" / "hyp.jsonl").read_text().splitlines():
        h = json.loads(line)
        by_spk.setdefault(spk_of[h["id"]], set()).add(h["warp"])
    assert len(by_spk) == 2 and all(len(f) == 1 for f in by_spk.values()), by_spk
    assert summary["speaker_warps"] == {spk: f.pop() for spk, f in sorted(by_spk.items())}
    table = speechseq_cli("score", "--table", str(tmp_path / "spk" / "summary.json"))
    assert "| greedy + VTLN (3 warps, per speaker) |" in table.stdout, table.stdout
    r = speechseq_cli("decode", "--model-dir", str(exp_dir), "--manifest", str(fsdd_tiny["dev"]), "--out",
                      str(tmp_path / "spk_bad"), "--warp-by", "speaker")
    assert r.returncode != 0 and "a warp per speaker needs --warps" in r.stderr


def test_lm_then_decode_with_fusion(exp_dir, fsdd_tiny, tmp_path):
    arpa = tmp_path / "lm.arpa"
    r = speechseq_cli("lm", "--manifest", str(fsdd_tiny["train"]), "--tokenizer", str(exp_dir / "tokenizer.model"),
                      "--order", "4", "--out", str(arpa))
    assert r.returncode == 0, r.stderr
    assert arpa.read_text().startswith("\n\\data\\\nngram 1=") and "4-gram" in r.stdout
    out = tmp_path / "decode_lm"
    r = speechseq_cli("decode", "--model-dir", str(exp_dir), "--manifest", str(fsdd_tiny["dev"]), "--out", str(out),
                      "--method", "beam", "--beam-size", "3", "--lm", str(arpa), "--lm-weight", "0.4")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lm"] == str(arpa) and summary["lm_weight"] == 0.4 and summary["lm_bonus"] == 1.0
    table = speechseq_cli("score", "--table", str(out / "summary.json"))
    assert "| beam (beam 3) + LM (weight 0.4, bonus 1.0) |" in table.stdout, table.stdout
    r = speechseq_cli("decode", "--model-dir", str(exp_dir), "--manifest", str(fsdd_tiny["dev"]), "--out",
                      str(tmp_path / "bad"), "--lm", str(arpa))  # greedy: fusion needs the beam search
    assert r.returncode != 0 and "LM fusion is for beam search" in r.stderr
    assert "Traceback" not in r.stderr


def test_align_writes_word_times_per_utterance(runs, fsdd_tiny):
    code, out, err = runs["results"]["align"]
    assert code == 0, err
    dev = read_manifest(fsdd_tiny["dev"])
    assert f"aligned {len(dev)} utterances" in out
    rows = [json.loads(line) for line in runs["align"].read_text().splitlines()]
    assert [r["id"] for r in rows] == [u.id for u in dev]
    for row, utt in zip(rows, dev):
        assert " ".join(w[0] for w in row["words"]) == utt.text
        previous_end = 0.0
        for _, start_s, end_s in row["words"]:
            assert previous_end <= start_s < end_s <= utt.duration + 1e-3
            previous_end = end_s


def test_align_calibrate_stores_the_delay_and_later_times_subtract_it(runs, exp_dir, fsdd_tiny, tmp_path, capsys):
    """References = the model's own forced times moved 120 ms later (starts) and 40 ms later (ends): calibration
    must measure exactly that, write timing.json, and aligning or transcribing afterwards must add it."""
    from speechseq import load_asr
    from speechseq.bin.align import main as align_main
    from speechseq.data.manifest import Utterance, write_manifest

    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.pt", "config.yaml", "tokenizer.model"):
        shutil.copy(exp_dir / name, model / name)
    rows = [json.loads(line) for line in runs["align"].read_text().splitlines()]
    dev = {u.id: u for u in read_manifest(fsdd_tiny["dev"])}
    refs = [Utterance(id=r["id"], audio=dev[r["id"]].audio, text=dev[r["id"]].text, duration=dev[r["id"]].duration,
                      extra={"words": [[w, round(a + 0.12, 3), round(b + 0.04, 3)] for w, a, b in r["words"]]})
            for r in rows]
    manifest = tmp_path / "ref.jsonl"
    write_manifest(manifest, refs)
    assert align_main(["--calibrate", "--model-dir", str(model), "--manifest", str(manifest)]) == 0
    assert "start shift +120.0 ms, end shift +40.0 ms" in capsys.readouterr().out
    timing = json.loads((model / "timing.json").read_text())
    assert timing["start_shift_s"] == pytest.approx(0.12, abs=1e-6) and timing["words"] == len(refs)
    assert align_main(["--model-dir", str(model), "--manifest", str(manifest), "--out", str(tmp_path / "a.jsonl")]) == 0
    assert "mean 0.0 ms" in capsys.readouterr().out  # the shifted times now match the references
    asr = load_asr(model)
    assert asr.timing == pytest.approx((0.12, 0.04))
    first = refs[0]
    shifted = asr.transcribe(first.audio, word_timestamps=True)[0].words
    (model / "timing.json").unlink()
    plain = load_asr(model).transcribe(first.audio, word_timestamps=True)[0].words
    assert [w.word for w in shifted] == [w.word for w in plain]
    assert all(s.start_s == pytest.approx(p.start_s + 0.12) for s, p in zip(shifted, plain))
    (model / "timing.json").write_text("{}")
    with pytest.raises(Exception, match="timing.json: not a timing file"):
        load_asr(model)


def test_recognizer_align_batched_equals_one_by_one_and_reports_unalignable(exp_dir, fsdd_tiny):
    from speechseq import load_asr

    asr = load_asr(exp_dir)
    dev = read_manifest(fsdd_tiny["dev"])[:5]
    paths, texts = [u.audio for u in dev], [u.text for u in dev]
    batched = asr.align(paths, texts, batch_size=4)
    for path, text, words in zip(paths, texts, batched):
        assert words is not None and " ".join(w.word for w in words) == text
        assert asr.align([path], [text], batch_size=1)[0] == words
    assert asr.align([paths[0]], [""])[0] == []
    with pytest.raises(Exception, match="inputs and texts are lists"):
        asr.align(paths[0], texts[0])
    assert asr.align([paths[0]], [" ".join(["seven"] * 200)])[0] is None  # more tokens than frames
    with pytest.raises(Exception, match="2 inputs but 1 texts"):
        asr.align(paths[:2], texts[:1])


def test_transcribe_with_an_aligner_takes_its_word_times(exp_dir, fsdd_tiny, tmp_path, monkeypatch):
    """The recognizer (made to output the reference transcripts: a 4-step model outputs nothing) and the aligner are
    the same weights, the aligner with a calibrated shift: the transcripts must be the recognizer's, and the word
    times the forced alignment of those transcripts plus the aligner's shift."""
    from speechseq import load_asr
    from speechseq.asr.ctc import Hypothesis

    aligner_dir = tmp_path / "aligner"
    aligner_dir.mkdir()
    for name in ("model.pt", "config.yaml", "tokenizer.model"):
        shutil.copy(exp_dir / name, aligner_dir / name)
    (aligner_dir / "timing.json").write_text(json.dumps({"start_shift_s": 0.1, "end_shift_s": 0.05}))
    asr, aligner = load_asr(exp_dir), load_asr(aligner_dir)
    dev = read_manifest(fsdd_tiny["dev"])[:6]
    paths, texts = [u.audio for u in dev], [u.text for u in dev]
    by_frames = {}  # input length -> reference tokens (the clips have distinct lengths)
    for u in dev:
        by_frames[len(asr._load(u.audio, u.id))] = asr.tokenizer.encode(u.text)
    assert len(by_frames) == len(dev)

    def perfect(waves, wave_lens, method, beam_size, spans=False, lm=None, warp=None):
        assert not spans  # the aligner times the words, not the recognizer
        return [Hypothesis(by_frames[int(n)], [], 0.0) for n in wave_lens]

    monkeypatch.setattr(asr.model, "recognize", perfect)
    timed = asr.transcribe(paths, batch_size=4, word_timestamps=True, aligner=aligner)
    assert [t.text for t in timed] == texts
    plain = asr.align(paths, texts)
    for t, words in zip(timed, plain):
        assert t.token_times is None and [w.word for w in t.words] == [w.word for w in words]
        for pw, tw in zip(words, t.words):
            assert tw.start_s == pytest.approx(pw.start_s + 0.1)
            assert tw.end_s == pytest.approx(max(pw.end_s + 0.05, tw.start_s))
    with pytest.raises(Exception, match="needs word_timestamps=True"):
        asr.transcribe(paths[0], aligner=aligner)
    # an aligner at another rate reads the inputs themselves (one resampling from the source, not two)
    seen = {}

    def record(inputs, texts, batch_size=8):
        seen["inputs"] = list(inputs)
        return [None] * len(inputs)

    monkeypatch.setattr(aligner, "sample_rate", 8000)
    monkeypatch.setattr(aligner, "align", record)
    assert all(t.words == [] for t in asr.transcribe(paths, word_timestamps=True, aligner=aligner))
    assert seen["inputs"] == paths


def test_aligned_words_take_the_transcript_spelling():
    from speechseq.asr.ctc import WordTime
    from speechseq.infer.recognizer import _with_transcript_words

    words = [WordTime("h<unk>llo", 0.1, 0.4), WordTime("there", 0.5, 0.9)]
    assert _with_transcript_words(words, "héllo there") == [WordTime("héllo", 0.1, 0.4), WordTime("there", 0.5, 0.9)]
    assert _with_transcript_words(words, "hello") == words  # counts differ: the aligner's words as they are


def test_average_writes_model_pt(runs, exp_dir):
    code, out, err = runs["results"]["average"]
    assert code == 0, err
    model_pt = runs["averaged"] / "model.pt"
    assert model_pt.exists() and str(model_pt) in out
    averaged = ckpt.load(model_pt)
    assert averaged["averaged"] == ["step_0000002.pt", "step_0000004.pt"] and averaged["step"] == 4
    assert averaged["tokenizer_sha256"] == ckpt.load(exp_dir / "model.pt")["tokenizer_sha256"]
    trained = ckpt.load(exp_dir / "model.pt")["model"]  # the training run averaged the same two checkpoints
    assert averaged["model"].keys() == trained.keys()
    for key, value in trained.items():
        assert torch.equal(averaged["model"][key], value), key


def test_average_without_checkpoints_is_a_clean_error(tmp_path):
    r = speechseq_cli("average", "--exp", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "no step_*.pt checkpoints" in r.stderr and "Traceback" not in r.stderr

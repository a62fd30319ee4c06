"""Slow end-to-end checks: the Quickstart recipe at tiny scale, then word-timestamp error on known boundaries.

Run with ``pytest -m slow`` (about 15 minutes on 2 CPU cores).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("synth_tiny")
    # the Quickstart as a user runs it: torch's default threads (conftest.py sets OMP_NUM_THREADS=1 for the other
    # tests; a single-threaded run trains along another trajectory, and this test should check the one users get)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({"data": str(work / "data"), "exp": str(work / "exp"),
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    proc = subprocess.run([str(ROOT / "egs/synth_en/asr/run.sh"), "--scale", "tiny"], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, proc.stdout


@pytest.mark.slow
def test_tiny_recipe_reaches_target_wer(tiny_run):
    work, stdout = tiny_run
    assert "| decode | method |" in stdout  # the WER table is printed
    wer = {}
    for method in ("greedy", "beam", "beam_lm"):
        summary = json.loads((work / "exp" / f"decode_test_{method}" / "summary.json").read_text())
        assert summary["utterances"] == 100
        wer[method] = summary["wer"]
    assert wer["beam_lm"] <= 0.20, wer  # the target, with the n-gram LM from the training transcripts
    assert wer["beam_lm"] < wer["beam"] <= wer["greedy"] + 0.01 and wer["greedy"] <= 0.35, wer
    # score names the exp folder; every method also decoded with speaker-level VTLN (run.sh's default --warps)
    assert (work / "exp" / "RESULTS.md").read_text().count("| exp/decode_test_") == 6
    vtln = json.loads((work / "exp" / "decode_test_greedy_vtln" / "summary.json").read_text())
    assert vtln["warp_by"] == "speaker" and len(vtln["warps"]) == 9 and vtln["utterances"] == 100


@pytest.mark.slow
def test_forced_alignment_word_boundaries(tiny_run):
    from speechseq.bin.align import align_manifest
    from speechseq.data.manifest import read_manifest
    from speechseq.data.synthetic import available_voices, make_connected_alignment_set

    work, _ = tiny_run
    test = read_manifest(work / "data" / "test.jsonl")
    test_voices = {u.speaker for u in test}
    # connected speech by the held-out festival voice, with the word boundaries festival reports
    voice = next(v for v in available_voices() if v.id in test_voices and v.engine == "festival")
    manifest = make_connected_alignment_set(work / "align", [u.text for u in test[:20]], voice)
    num = len(read_manifest(manifest))
    result = align_manifest(str(work / "exp"), str(manifest), str(work / "align" / "hyp.jsonl"))
    assert num >= 18 and result["aligned"] == num and result["scored"] == num
    # Regression bound on the mean absolute word-boundary error: about 0.2 s with the tiny model today
    # (docs/benchmarks.md); issue 3's goal is 0.08 s, which these full-context x8 models do not reach.
    assert result["mae_s"] < 0.3, result

"""Scoring: corpus WER through jiwer, per-utterance errors, and the paired bootstrap that compares two systems."""

from __future__ import annotations

import json

import pytest

from speechseq.bin.score import format_comparison, main
from speechseq.errors import SpeechseqError
from speechseq.text.score import error_rates, paired_bootstrap, paired_bootstrap_runs, utterance_errors

REFS = [f"turn on the light in the {room} {when}" for room in ("kitchen", "hall", "attic", "garage", "study")
        for when in ("now", "later", "tonight", "soon", "again", "today", "early", "please")]  # 40 x 8 words


def test_utterance_errors_sum_to_the_corpus_counts():
    hyps = [r.replace("light", "lamp") if i % 3 == 0 else r + " please" if i % 5 == 0 else r for i, r in enumerate(REFS)]
    errors, words = utterance_errors(REFS, hyps)
    r = error_rates(REFS, hyps)
    assert sum(errors) == r.substitutions + r.deletions + r.insertions and sum(words) == r.ref_words
    assert errors[0] == 1 and errors[5] == 1 and errors[1] == 0


def test_paired_bootstrap_separates_a_consistent_gain_from_no_difference():
    worse = [r.replace("light", "lamp") if i % 2 == 0 else r for i, r in enumerate(REFS)]  # 20 substitutions
    better = [r.replace("light", "lamp") if i % 10 == 0 else r for i, r in enumerate(REFS)]  # 4 of the same
    c = paired_bootstrap(REFS, worse, better, resamples=500)
    assert c.delta == pytest.approx((4 - 20) / 320)
    assert c.ci_high < 0 and c.p_not_better < 0.01  # B better in (nearly) every resample
    same = paired_bootstrap(REFS, worse, worse, resamples=200)
    assert same.delta == 0 and same.ci_low == same.ci_high == 0 and same.p_not_better == 1.0
    # one utterance better and one worse: a difference of zero, not significant
    mixed = list(worse)
    mixed[0], mixed[1] = REFS[0], REFS[1] + " x"
    m = paired_bootstrap(REFS, worse, mixed, resamples=500)
    assert m.delta == 0 and m.ci_low < 0 < m.ci_high and 0.2 < m.p_not_better < 1


def write(path, refs, hyps, ids=None):
    ids = ids or [f"u{i}" for i in range(len(refs))]
    path.write_text("".join(json.dumps({"id": i, "ref": r, "hyp": h}) + "\n" for i, r, h in zip(ids, refs, hyps)))


def test_compare_matches_ids_and_names_mismatched_files(tmp_path, capsys):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write(a, REFS, [r.replace("light", "lamp") for r in REFS])
    write(b, REFS[::-1], REFS[::-1], ids=[f"u{i}" for i in range(40)][::-1])  # same ids, other order
    assert main(["--hyp", str(a), "--compare", str(b), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "A 12.50%  B 0.00%  B - A -12.50 points" in out and "P(B not better) = 0.000" in out
    write(c, REFS[:10], REFS[:10])
    with pytest.raises(SpeechseqError, match="do not hold the same utterances"):
        format_comparison([a], [c], 100)
    c.write_text('{"id": "u0", "ref": "x"}\n')
    with pytest.raises(SpeechseqError, match=r"c\.jsonl:1: not a hypothesis line"):
        format_comparison([a], [c], 100)


def test_compare_refuses_other_references_for_the_same_ids(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(a, REFS, REFS)
    other = [r.replace("kitchen", "kitchens") for r in REFS]  # another manifest (or text version), same ids
    write(b, other, other)
    with pytest.raises(SpeechseqError, match=r"a\.jsonl and .*b\.jsonl hold other references for 8 utterances, "
                                             r"e\.g\. u0: 'turn on the light in the kitchen now' vs"):
        format_comparison([a], [b], 100)


def test_empty_reference_counts_the_hypothesis_as_insertions():
    refs, hyps = ["the cat sat", "", "..."], ["the cat sat", "uh huh", "oh"]  # "..." is empty once normalised
    r = error_rates(refs, hyps)
    assert (r.insertions, r.ref_words, r.utterances, r.wer) == (3, 3, 3, 1.0)
    assert r.cer == pytest.approx(len("uh huh" "oh") / len("the cat sat"))
    assert utterance_errors(refs, hyps) == ([0, 2, 1], [3, 0, 0])
    c = paired_bootstrap(refs, hyps, refs, resamples=50)
    assert c.wer_a == 1.0 and c.wer_b == 0.0 and c.utterances == 3


def test_paired_bootstrap_draws_in_bounded_chunks_with_the_same_result(monkeypatch):
    import tracemalloc

    import numpy as np

    from speechseq.text import score

    refs = [f"w{i} x{i % 7}" for i in range(500)]
    hyps_a = [r if i % 3 else f"w{i} y" for i, r in enumerate(refs)]
    hyps_b = [r if i % 4 else f"w{i}" for i, r in enumerate(refs)]
    # the statistics of one (resamples, utterances) draw, as computed before chunking
    ea, words = utterance_errors(refs, hyps_a, normalize=False)
    eb, _ = utterance_errors(refs, hyps_b, normalize=False)
    ea, eb, words = np.asarray(ea, float), np.asarray(eb, float), np.asarray(words, float)
    idx = np.random.default_rng(3).integers(0, 500, size=(1001, 500))
    deltas = (eb[idx].sum(1) - ea[idx].sum(1)) / words[idx].sum(1)
    del idx
    monkeypatch.setattr(score, "_BOOTSTRAP_CHUNK", 4000, raising=False)  # 8 resamples at a time, the last chunk partial
    paired_bootstrap(refs, hyps_a, hyps_b, resamples=10, normalize=False)  # jiwer's first-call allocations
    tracemalloc.start()
    c = paired_bootstrap(refs, hyps_a, hyps_b, resamples=1001, seed=3, normalize=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000  # one draw of 1001 x 500 indices alone is 4 MB
    assert (c.ci_low, c.ci_high) == (np.quantile(deltas, 0.025), np.quantile(deltas, 0.975))
    assert c.p_not_better == (deltas >= 0).mean()


def test_bootstrap_over_runs_pools_each_systems_errors_per_utterance():
    lamp = [r.replace("light", "lamp") for r in REFS]  # one substitution in every utterance
    a1 = [h if i % 2 == 0 else r for i, (r, h) in enumerate(zip(REFS, lamp))]  # 20 errors
    a2 = [h if i % 4 == 0 else r for i, (r, h) in enumerate(zip(REFS, lamp))]  # 10 errors
    b1 = [h if i % 8 == 0 else r for i, (r, h) in enumerate(zip(REFS, lamp))]  # 5 errors
    c = paired_bootstrap_runs(REFS, [a1, a2], [b1], resamples=300)
    assert (c.wer_a, c.wer_b, c.runs_a, c.runs_b) == (pytest.approx(15 / 320), pytest.approx(5 / 320), 2, 1)
    assert c.ci_high < 0 and c.p_not_better < 0.01
    # one run each is exactly the two-system bootstrap, draw for draw
    one, two = paired_bootstrap_runs(REFS, [a1], [b1], 300, seed=4), paired_bootstrap(REFS, a1, b1, 300, seed=4)
    assert (one.ci_low, one.ci_high, one.p_not_better) == (two.ci_low, two.ci_high, two.p_not_better)
    # a gain in one run that the other run reverses is no gain once both runs count
    b_lucky, b_unlucky = REFS, lamp  # 0 and 40 errors: mean 20, as a1 twice
    pooled = paired_bootstrap_runs(REFS, [a1, a1], [b_lucky, b_unlucky], resamples=300)
    assert pooled.delta == 0 and pooled.p_not_better > 0.2
    with pytest.raises(ValueError, match="at least one run"):
        paired_bootstrap_runs(REFS, [], [b1])


def test_compare_takes_several_runs_per_system_and_checks_every_file(tmp_path, capsys):
    lamp = [r.replace("light", "lamp") for r in REFS]
    a1, a2, b1, b2, bad = (tmp_path / f"{n}.jsonl" for n in ("a1", "a2", "b1", "b2", "bad"))
    write(a1, REFS, lamp)
    write(a2, REFS, [h if i % 2 else r for i, (r, h) in enumerate(zip(REFS, lamp))])
    write(b1, REFS, REFS)
    write(b2, REFS[::-1], lamp[::-1], ids=[f"u{i}" for i in range(40)][::-1])  # same ids, other order
    assert main(["--hyp", str(a1), str(a2), "--compare", str(b1), str(b2), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert f"{a1}: WER 12.50%" in out and f"{a2}: WER 6.25%" in out  # one line per file
    assert "A 9.38%  B 6.25%  B - A -3.12 points" in out and "errors pooled over 2 vs 2 runs" in out
    write(bad, REFS[:39], REFS[:39])
    with pytest.raises(SpeechseqError, match=r"a1\.jsonl and .*bad\.jsonl do not hold the same utterances"):
        format_comparison([a1, a2], [b1, bad], 100)


def test_table_names_a_second_training_run_by_its_parent():
    from pathlib import Path

    from speechseq.bin.score import model_name

    assert model_name(Path("exp/ablation/control/seed2")) == "control/seed2"
    assert model_name(Path("exp/paraformer_tiny/mwer")) == "paraformer_tiny+mwer"
    assert model_name(Path("exp/seedless")) == "seedless"

"""WER and CER with jiwer, after the same English normalisation for references and hypotheses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from speechseq.errors import SpeechseqError
from speechseq.text.normalize import normalize_en

_BOOTSTRAP_CHUNK = 1 << 22  # utterance indices drawn at once by paired_bootstrap


@dataclass
class ErrorRates:
    """wer/cer as fractions; counts of word substitutions, deletions, insertions; reference words; utterances."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    ref_words: int
    utterances: int


def error_rates(refs: list[str], hyps: list[str], normalize: bool = True) -> ErrorRates:
    """Corpus-level WER/CER of ``hyps`` against ``refs`` (same length lists). An utterance whose reference is empty
    (after normalisation) adds its hypothesis words as insertions (and its characters to the CER's errors)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if normalize:
        refs, hyps = [normalize_en(r) for r in refs], [normalize_en(h) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    if not pairs:
        raise ValueError("no non-empty reference to score against")
    extra = [h for r, h in zip(refs, hyps) if not r.strip()]  # jiwer 3 refuses empty references: counted here
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    words = jiwer.process_words(r, h)
    chars = jiwer.process_characters(r, h)
    insertions = words.insertions + sum(len(x.split()) for x in extra)
    n_ref = sum(len(x.split()) for x in r)
    char_errors = chars.substitutions + chars.deletions + chars.insertions + sum(len(x.strip()) for x in extra)
    cer = char_errors / (chars.hits + chars.substitutions + chars.deletions)
    return ErrorRates((words.substitutions + words.deletions + insertions) / n_ref, cer, words.substitutions,
                      words.deletions, insertions, n_ref, len(refs))


@dataclass
class PairedComparison:
    """System B against system A on the same utterances: their WERs (fractions), delta = wer_b - wer_a, the
    (2.5%, 97.5%) bootstrap interval of delta, and p_not_better: the share of resamples where B is not better
    (wer_b >= wer_a); small means B is reliably better, near 1 reliably worse."""

    wer_a: float
    wer_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_not_better: float
    utterances: int
    resamples: int
    runs_a: int = 1
    runs_b: int = 1


def utterance_errors(refs: list[str], hyps: list[str], normalize: bool = True) -> tuple[list[int], list[int]]:
    """Word errors (sub + del + ins) and reference words of every utterance (after normalisation); an empty
    reference gives 0 words and its hypothesis words as errors, as in :func:`error_rates`."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors, words = [], []
    for r, h in zip(refs, hyps):
        r, h = (normalize_en(r), normalize_en(h)) if normalize else (r, h)
        if not r.strip():
            errors.append(len(h.split()))
            words.append(0)
            continue
        o = jiwer.process_words(r, h)
        errors.append(o.substitutions + o.deletions + o.insertions)
        words.append(len(r.split()))
    return errors, words


def paired_bootstrap(refs: list[str], hyps_a: list[str], hyps_b: list[str], resamples: int = 2000,
                     seed: int = 0, normalize: bool = True) -> PairedComparison:
    """Paired bootstrap of the corpus WER difference between two systems (Koehn, 2004; Bisani and Ney, 2004):
    utterances are drawn with replacement, the same draw for both systems, and each draw's corpus WERs are
    compared. Tells whether a difference of a few tenths on a few hundred utterances is more than the choice of
    test utterances. Written here because jiwer scores but does not compare systems."""
    return paired_bootstrap_runs(refs, [hyps_a], [hyps_b], resamples, seed, normalize)


def paired_bootstrap_runs(refs: list[str], runs_a: list[list[str]], runs_b: list[list[str]], resamples: int = 2000,
                          seed: int = 0, normalize: bool = True) -> PairedComparison:
    """:func:`paired_bootstrap` for systems trained several times (seeds): each system's WER is its errors summed
    over its runs divided by its runs x reference words, and the resamples draw utterances, each carrying all
    runs' errors on it. So a difference must hold across the choice of utterances with every run counted, rather
    than for one lucky seed; the seeds themselves are not resampled (with 2-3 runs there is too little to draw
    from). The two systems may have different numbers of runs."""
    if not runs_a or not runs_b:
        raise ValueError("each system needs at least one run")
    na, nb = len(runs_a), len(runs_b)
    scored = [utterance_errors(refs, hyps, normalize) for hyps in [*runs_a, *runs_b]]
    words = np.asarray(scored[0][1], float)  # the same for every run: it counts the references
    ea = np.sum([e for e, _ in scored[:na]], axis=0, dtype=float)
    eb = np.sum([e for e, _ in scored[na:]], axis=0, dtype=float)
    if words.sum() == 0:
        raise ValueError("no reference words to score against")
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOTSTRAP_CHUNK // len(words))  # resamples per chunk: ~4M indices (32 MB) at a time
    deltas = np.empty(resamples)
    for start in range(0, resamples, rows):  # row by row, the same draws as one (resamples, utterances) array
        idx = rng.integers(0, len(words), size=(min(rows, resamples - start), len(words)))
        n = words[idx].sum(1).clip(min=1)
        deltas[start:start + len(idx)] = (eb[idx].sum(1) / nb - ea[idx].sum(1) / na) / n
    wer_a, wer_b = ea.sum() / na / words.sum(), eb.sum() / nb / words.sum()
    return PairedComparison(float(wer_a), float(wer_b), float(wer_b - wer_a), float(np.quantile(deltas, 0.025)),
                            float(np.quantile(deltas, 0.975)), float((deltas >= 0).mean()), len(words), resamples, na, nb)


def read_hyps(path: str | Path) -> list[dict]:
    """A ``speechseq decode`` hyp.jsonl (one {"id", "ref", "hyp"} object per line, ref and hyp strings), with the
    file and line named on a bad line."""
    path = Path(path)
    if not path.exists():
        raise SpeechseqError(f"{path}: hypothesis file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"id": str(row["id"]), "ref": row["ref"], "hyp": row["hyp"]})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise SpeechseqError(f"{path}:{n}: not a hypothesis line with id, ref and hyp ({e})") from e
        if not isinstance(row["ref"], str) or not isinstance(row["hyp"], str):
            raise SpeechseqError(f"{path}:{n}: 'ref' and 'hyp' must be strings")
    return rows

"""WER and CER with jiwer, after the same English normalisation for references and hypotheses."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer

from speechseq.text.normalize import normalize_en


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
    """Corpus-level WER/CER of ``hyps`` against ``refs`` (same length lists)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if normalize:
        refs, hyps = [normalize_en(r) for r in refs], [normalize_en(h) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    if not pairs:
        raise ValueError("no non-empty reference to score against")
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    words = jiwer.process_words(r, h)
    chars = jiwer.cer(r, h)
    n_ref = sum(len(x.split()) for x in r)
    return ErrorRates(words.wer, float(chars), words.substitutions, words.deletions, words.insertions, n_ref, len(r))

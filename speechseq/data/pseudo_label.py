"""Pseudo-labels for unlabelled audio, chosen by the agreement of several decodes (self-training).

Self-training fine-tunes a model on its own transcripts of audio that has none (Kahn et al. 2020, "Self-training
for end-to-end speech recognition"; Park et al. 2020, noisy student training for ASR). It helps as far as the
transcripts it keeps are right, so it needs a confidence for each. The one used here is agreement: a *labelling*
decode (typically the strongest the recipe has, an ensemble with an LM) proposes a transcript, and the utterance is
kept when at least ``min_votes`` of the *voting* decodes (typically the ensemble's members, each decoded alone) give
the same text. On FSDD's hardest held-out speaker, a five-member ensemble's transcripts are 72% right overall and
82-86% right where four of the five members agree (egs/fsdd/asr/RESULTS.md, "Self-training").

The decodes are the ``hyp.jsonl`` files that ``speechseq decode`` writes (read with
:func:`speechseq.text.score.read_hyps`). Their ``ref`` field (the manifest's text, if any) is never used for the
selection: a kept utterance's text is the labelling decode's hypothesis. When the manifest does hold references,
:func:`select_pseudo_labels` reports the kept transcripts' WER against them as a diagnostic (how good the labels
are), nothing more.

Written here because no library selects pseudo-labels over speechseq's decode files; the WER comes from jiwer
(``speechseq.text.score``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from speechseq.data.manifest import Utterance
from speechseq.errors import SpeechseqError
from speechseq.text.score import error_rates


@dataclass(frozen=True)
class PseudoLabelReport:
    """What a selection kept.

    Attributes:
        offered: utterances of the manifest.
        kept: utterances kept (a non-empty labelling hypothesis and at least ``min_votes`` agreeing votes).
        label_wer: WER of the kept transcripts against the manifest's own text, or None when the manifest has no
            text for some kept utterance (unlabelled audio). A diagnostic only; the selection never reads it.
    """

    offered: int
    kept: int
    label_wer: float | None


def select_pseudo_labels(utts: list[Utterance], label: dict[str, str], votes: list[dict[str, str]],
                         min_votes: int) -> tuple[list[Utterance], PseudoLabelReport]:
    """The utterances of ``utts`` whose ``label`` hypothesis is non-empty and equals the hypothesis of at least
    ``min_votes`` of the ``votes`` decodes, each with its text replaced by that hypothesis (and ``pseudo_votes``,
    the number of agreeing votes, among its extra fields).

    Every utterance must have a hypothesis in ``label`` and in every vote (they may hold other utterances too, e.g.
    a decode of a whole test set labelling one half of it): a missing one is an error, since it would otherwise
    silently count as disagreement.
    """
    if not 0 <= min_votes <= len(votes):
        raise SpeechseqError(f"min_votes must be between 0 and the number of votes ({len(votes)}), got {min_votes}")
    for name, hyps in [("the labelling decode", label)] + [(f"vote {k + 1}", v) for k, v in enumerate(votes)]:
        missing = [u.id for u in utts if u.id not in hyps]
        if missing:
            raise SpeechseqError(f"{name} has no hypothesis for {len(missing)} of the {len(utts)} utterances, e.g. "
                                 f"{missing[:3]}: decode the same manifest (or a superset of it)")
    kept, refs = [], []
    for u in utts:
        text = label[u.id].strip()
        agree = sum(v[u.id].strip() == text for v in votes)
        if text and agree >= min_votes:
            kept.append(replace(u, text=text, extra={**u.extra, "pseudo_votes": agree}))
            refs.append(u.text)
    label_wer = None
    if kept and all(r.strip() for r in refs):
        label_wer = error_rates(refs, [u.text for u in kept]).wer
    return kept, PseudoLabelReport(offered=len(utts), kept=len(kept), label_wer=label_wer)


def repeat_utterances(utts: list[Utterance], times: int) -> list[Utterance]:
    """``times`` copies of every utterance (ids ``<id>``, ``<id>~r1``, ...), to weight a small pseudo-labelled set
    against a large labelled one in one training manifest (manifest ids must be unique)."""
    if times < 1:
        raise SpeechseqError(f"repeat must be at least 1, got {times}")
    return [u if k == 0 else replace(u, id=f"{u.id}~r{k}") for k in range(times) for u in utts]

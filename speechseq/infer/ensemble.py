"""Ensembles of recognizers by n-best rescoring.

    members = [speechseq.load_asr(d) for d in ("exp/seed0", "exp/seed1", "exp/seed2")]
    lm = members[0].load_lm("exp/seed0/lm.arpa", 0.6, 1.5)
    results = ensemble_transcribe(members, ["a.wav", "b.wav"], method="beam", beam_size=10, lm=lm)

Every member proposes transcripts for an utterance (its CTC prefix-beam or AED beam-search n-best; Paraformer's
beam 1-best; every member's greedy transcript for method "greedy"); every member then scores every proposed
transcript by its CTC head's log-likelihood, summed over all alignments (the CTC forward algorithm); an AED member
mixes that with its decoder's teacher-forced log-prob of the tokens and <eos> as it was trained,
``ctc_weight x CTC + (1 - ctc_weight) x decoder``; the transcript with the best mean score over the members (plus,
with ``lm``, the LM's weighted log-prob and the length bonus, as in shallow fusion) wins. This is a product of the
members' sequence posteriors, restricted to what some member proposed.

Why sequence level rather than averaged frame posteriors: the CTC spikes of separately trained models need not fall
on the same frames, and averaging per frame splits a spike between a token and blank. (Measured on FSDD with one
model decoded at eight frequency warps, whose frames do line up: averaged posteriors gave 17.6% WER against
14.2% at warp 1.0, egs/fsdd/asr/RESULTS.md.) The forward score lets each member time the transcript its own way, so
members may differ in tokenizer, frame rate, sample rate and kind (Paraformer is scored by its CTC branch alone:
its decoder reads one CIF slot per token, so it cannot score a transcript of another length without re-timing
it). No library offers this for PyTorch CTC models, hence our own (a few tensor calls over torch's CTC loss).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from speechseq.asr.ctc import BLANK, prefix_beam_search
from speechseq.errors import SpeechseqError
from speechseq.infer.recognizer import AudioInput, Recognizer, Transcript, is_single_input
from speechseq.text.ngram import LmFusion
from speechseq.text.tokenizer import EOS_ID

CHUNK = 256
"""Utterances whose posteriors are held at once: every member decodes a chunk, then it is scored and freed."""


@torch.no_grad()
def _member_pass(member: Recognizer, items: Sequence[AudioInput], first: int, batch_size: int, method: str,
                 beam_size: int, lm: LmFusion | None, warps: Sequence[float] | None = None
                 ) -> tuple[list[Tensor], list[Tensor | None], list[list[list[int]]]]:
    """One member over ``items`` (``inputs[first:]``, for error messages): per utterance, its CTC head's (T', V)
    log-posteriors, an AED member's (T', D) encoder output for its decoder's scores (else None), both on the CPU,
    and its proposals (token ids). ``warps``: the member first picks its own factor per utterance
    (:meth:`Recognizer.warped_encode`), and its proposals and scores all come from that warped pass."""
    waves = [member._load(x, f"inputs[{first + i}]") for i, x in enumerate(items)]
    log_probs: list[Tensor | None] = [None] * len(waves)
    hiddens: list[Tensor | None] = [None] * len(waves)
    proposals: list[list[list[int]]] = [[] for _ in waves]
    fuse = lm if lm is not None and member.fits(lm) else None
    ctc = member.model if member.kind == "ctc" else member.model.ctc
    for idx, padded, lens in member.padded_batches(waves, batch_size):
        with member.precision():
            out = ctc(padded, lens) if warps is None else member.warped_encode(padded, lens, warps)[1]
            if member.kind == "ctc" and method == "beam":
                nbests = [[h.tokens for h in nb]
                          for nb in prefix_beam_search(out.log_probs, out.lens, beam_size, lm=fuse)]
            elif member.kind == "aed" and method == "beam":
                nbests = [[h.tokens for h in nb] for nb in member.model.nbest_encoded(out, beam_size, lm=fuse)]
            else:
                nbests = [[h.tokens] for h in member.model.decode_encoded(out, method, beam_size, lm=fuse)]
        for row, (i, nbest) in enumerate(zip(idx, nbests)):
            log_probs[i] = out.log_probs[row, : int(out.lens[row])].float().cpu()
            if member.kind == "aed":
                hiddens[i] = out.hidden[row, : int(out.lens[row])].cpu()
            proposals[i] = nbest
    return log_probs, hiddens, proposals  # type: ignore[return-value]


def ctc_log_likelihoods(log_probs: Tensor, token_seqs: Sequence[Sequence[int]]) -> Tensor:
    """log p(tokens | x) under CTC, summed over all alignments, for each of ``token_seqs`` against one utterance's
    (T', V) log-posteriors: (N,) float64, -inf where a sequence cannot be aligned (more frames needed than T')."""
    n = len(token_seqs)
    if n == 0:
        return torch.zeros(0, dtype=torch.float64)
    t = log_probs.shape[0]
    lens = torch.tensor([len(s) for s in token_seqs])
    if t == 0:
        return torch.where(lens == 0, 0.0, -torch.inf).double()
    targets = torch.tensor([tok for s in token_seqs for tok in s], dtype=torch.long)
    lp = log_probs.double()[:, None, :].expand(t, n, log_probs.shape[-1])
    nll = F.ctc_loss(lp, targets, torch.full((n,), t), lens, blank=BLANK, reduction="none", zero_infinity=False)
    return -nll


def _lm_logprob(lm: LmFusion, tokens: Sequence[int]) -> float:
    total = sum(lm.scorer.score(tokens[:k], tok) for k, tok in enumerate(tokens))
    return total + lm.scorer.score(tokens, EOS_ID)


def ensemble_transcribe(members: Sequence[Recognizer], inputs: Sequence[AudioInput], batch_size: int = 8,
                        method: str = "beam", beam_size: int = 10, lm: LmFusion | None = None,
                        warps: Sequence[float] | None = None) -> list[Transcript]:
    """Transcribe ``inputs`` (paths or (array, sample_rate) pairs) with an ensemble; one Transcript per input.

    Args:
        members: the recognizers (each loads and resamples the inputs for itself).
        method: how each member proposes: "beam" (a CTC member's whole prefix-beam n-best, an AED member's whole
            beam-search n-best, a Paraformer member's beam 1-best) or "greedy" (each member's greedy transcript).
        lm: shallow fusion for the proposals of the members that share its tokenizer, and in the final score:
            ``mean member score + lm.weight * LM log-prob (with </s>) + lm.length_bonus * tokens`` with the
            tokens of the first member that shares the LM's tokenizer.
        warps: test-time VTLN: every member decodes each utterance at the factor of ``warps`` it is most certain
            at (:meth:`Recognizer.choose_warps`, its own choice), and scores every proposal at that factor.
    Returns:
        Transcripts whose ``tokens`` are the first member's tokenization and ``score`` the ensemble score above.
    Raises:
        SpeechseqError: no members, a non-list ``inputs``, an unknown method, batch/beam size below 1, an ``lm``
        over a tokenizer no member has or with method "greedy", or an AED / Paraformer member trained without its
        CTC loss (``ctc_weight`` 0). Audio errors as :meth:`Recognizer.transcribe`.
    """
    if not members:
        raise SpeechseqError("ensemble_transcribe: no members")
    if is_single_input(inputs):
        raise SpeechseqError("ensemble_transcribe: inputs must be a list of paths or (array, sample_rate) pairs")
    if method not in ("greedy", "beam"):
        raise SpeechseqError(f"ensemble_transcribe: unknown method {method!r} (choices: greedy, beam)")
    if batch_size < 1 or beam_size < 1:
        raise SpeechseqError(f"ensemble_transcribe: batch_size and beam_size must be >= 1, got {batch_size}, "
                             f"{beam_size}")
    for member in members:
        if member.kind != "ctc" and member.model.cfg.ctc_weight <= 0:
            raise SpeechseqError(f"ensemble_transcribe: the {member.kind} model of {member.tokenizer.model_path} was "
                                 "trained with ctc_weight 0: its CTC head, which scores the proposals, is untrained")
    lm_member = None
    if lm is not None:
        if method != "beam":
            raise SpeechseqError("ensemble_transcribe: LM fusion is for method 'beam'")
        lm_member = next((m for m in members if m.fits(lm)), None)
        if lm_member is None:
            raise SpeechseqError("ensemble_transcribe: the LM was built over a tokenizer that no member has")
    # members with the same pieces share token ids: a proposal's own ids are scored as well as the text's
    # re-encoding (a CTC model may emit another segmentation of the same text than the tokenizer's encode)
    groups = [next(g for g, o in enumerate(members) if o._pieces == m._pieces) for m in members]
    results = []
    for first in range(0, len(inputs), CHUNK):  # bounded memory: the posteriors of CHUNK utterances at a time
        items = inputs[first:first + CHUNK]
        passes = [_member_pass(m, items, first, batch_size, method, beam_size, lm, warps) for m in members]
        for i in range(len(items)):
            results.append(_choose([p[2][i] for p in passes], [p[0][i] for p in passes], [p[1][i] for p in passes],
                                   members, groups, lm, lm_member))
    return results


def _choose(proposals: list[list[list[int]]], log_probs: list[Tensor], hiddens: list[Tensor | None],
            members: Sequence[Recognizer], groups: list[int], lm: LmFusion | None,
            lm_member: Recognizer | None) -> Transcript:
    """One utterance: every member's proposals (token ids), CTC posteriors and (AED) encoder output -> the
    best-scoring transcript."""
    texts: dict[str, dict[int, set[tuple[int, ...]]]] = {}  # text -> tokenizer group -> proposed token sequences
    for member, group, nbest in zip(members, groups, proposals):
        for tokens in nbest:
            texts.setdefault(member.tokenizer.decode(tokens), {}).setdefault(group, set()).add(tuple(tokens))
    candidates = list(texts)
    total = torch.zeros(len(candidates), dtype=torch.float64)
    counted = 0
    for member, group, lp, hidden in zip(members, groups, log_probs, hiddens):
        seqs, owner = [], []
        for k, text in enumerate(candidates):
            for tokens in {tuple(member.tokenizer.encode(text)), *texts[text].get(group, ())}:
                seqs.append(list(tokens))
                owner.append(k)
        ll = ctc_log_likelihoods(lp, seqs)
        if hidden is not None:  # an AED member scores as it was trained: w x CTC + (1 - w) x its decoder
            w = member.model.cfg.ctc_weight
            with member.precision():
                ll = w * ll + (1 - w) * member.model.sequence_log_probs(hidden, seqs)
        best = torch.full((len(candidates),), -torch.inf, dtype=torch.float64)
        best.scatter_reduce_(0, torch.tensor(owner), ll, reduce="amax")
        if torch.isfinite(best).any():  # a member that can align nothing (no frames) has no say
            total += best
            counted += 1
    total /= max(counted, 1)
    if lm is not None:
        for k, text in enumerate(candidates):
            tokens = lm_member.tokenizer.encode(text)  # type: ignore[union-attr]
            total[k] += lm.weight * _lm_logprob(lm, tokens) + lm.length_bonus * len(tokens)
    k = int(total.argmax())
    return Transcript(candidates[k], members[0].tokenizer.encode(candidates[k]), float(total[k]))

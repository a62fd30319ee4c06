"""Encoder-only CTC ASR (OWSM-CTC style): conformer + CTC head, intermediate CTC with self-conditioning.

Training loss: ``(1 - w) * CTC(final) + w * mean(CTC(inter_k))`` with ``w = inter_weight``. With
``self_condition``, after each intermediate layer the hidden state gets ``x + Linear(softmax(head(x)))`` so later
layers are conditioned on earlier predictions (Nozaki & Komatsu, 2021; used by OWSM-CTC).

Label priors (Huang et al., 2024, "Less peaky and more accurate CTC forced alignment by label priors"): with
``prior_weight`` a > 0 the CTC loss scores paths with ``log p(k | x_t) - a * log prior(k)``, where the prior is a running
average of the model's own posteriors over training frames (a buffer, saved with the weights). Blank dominates the
prior, so paths with fewer blanks gain: the posteriors get less peaky and a token's frames cover more of its sound.
Forced alignment subtracts the same term (:meth:`CtcModel.alignment_scores`); recognition uses the plain posteriors.

Decoding: batched greedy; CTC prefix beam search; CTC forced alignment (Viterbi) with token and word times.
Dims: B batch, N samples, T' encoder frames, V vocabulary (blank = 0), L target tokens.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechseq.asr.conformer import ConformerConfig, ConformerEncoder
from speechseq.asr.frontend import Frontend, FrontendConfig
from speechseq.errors import ConfigError
from speechseq.layers.masks import valid_mask
from speechseq.text.ngram import LmFusion
from speechseq.text.tokenizer import EOS_ID

BLANK = 0


@dataclass
class CtcConfig:
    """CTC head options.

    Attributes:
        inter_layers: 1-based encoder layers with an intermediate CTC loss (e.g. (3, 6) of 8).
        inter_weight: weight w of the mean intermediate loss.
        self_condition: feed intermediate predictions back into the encoder.
        prior_weight: a of label-prior CTC (0 = plain CTC); the paper's range is about 0.3-1.
        prior_momentum: the prior is updated after each training forward as ``m * prior + (1 - m) * batch mean
            posterior``.
    """

    inter_layers: tuple[int, ...] = ()
    inter_weight: float = 0.0
    self_condition: bool = False
    prior_weight: float = 0.0
    prior_momentum: float = 0.99

    def __post_init__(self) -> None:
        if self.prior_weight < 0:
            raise ConfigError(f"ctc.prior_weight must be >= 0, got {self.prior_weight}")
        if not 0.0 <= self.prior_momentum < 1.0:
            raise ConfigError(f"ctc.prior_momentum must be in [0, 1), got {self.prior_momentum}")


@dataclass
class CtcOutput:
    """``loss`` (scalar, mean over utterances), ``log_probs`` (B, T', V; None when the head was skipped), ``lens``
    (B,), scalar ``metrics``, and the final encoder output ``hidden`` (B, T', D) that attention decoders read."""

    loss: Tensor | None
    log_probs: Tensor | None
    lens: Tensor
    metrics: dict[str, float]
    hidden: Tensor


class SelfCondition(nn.Module):
    """x -> x + Linear(softmax(head(x))): feeds the CTC posterior back into the encoder."""

    def __init__(self, head: nn.Linear, d_model: int):
        super().__init__()
        self.head = head
        self.proj = nn.Linear(head.out_features, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(torch.softmax(self.head(x), dim=-1))


class CtcModel(nn.Module):
    """Waveform in, CTC log-posteriors out (plus the loss when targets are given)."""

    def __init__(self, frontend: FrontendConfig, encoder: ConformerConfig, ctc: CtcConfig, vocab_size: int):
        super().__init__()
        self.ctc_cfg, self.vocab_size = ctc, vocab_size
        self.frontend = Frontend(frontend)
        self.encoder = ConformerEncoder(encoder)
        self.head = nn.Linear(encoder.d_model, vocab_size)
        self.condition = SelfCondition(self.head, encoder.d_model) if ctc.self_condition else None
        self.frame_shift_s = frontend.fbank.frame_shift_ms / 1000.0 * encoder.subsampling_factor
        """Seconds per encoder frame."""
        if ctc.prior_weight > 0:  # only then: older model directories load unchanged
            self.register_buffer("log_prior", torch.full((vocab_size,), -math.log(vocab_size)))
        self._register_load_state_dict_pre_hook(self._match_prior_key)

    def _match_prior_key(self, state_dict: dict, prefix: str, *args) -> None:
        """Let weights move between label-prior and plain models (``--init``): a missing prior starts uniform, an
        unused one is dropped."""
        key = prefix + "log_prior"
        if self.ctc_cfg.prior_weight > 0 and key not in state_dict:
            state_dict[key] = self.log_prior.new_full(self.log_prior.shape, -math.log(self.vocab_size))
        elif self.ctc_cfg.prior_weight <= 0:
            state_dict.pop(key, None)

    def forward(self, waves: Tensor, wave_lens: Tensor, tokens: Tensor | None = None,
                token_lens: Tensor | None = None, warp: Tensor | None = None, head: bool = True) -> CtcOutput:
        """
        Args:
            waves: (B, N) float32 audio at the frontend's sample rate, zero-padded.
            wave_lens: (B,) int64 valid samples.
            tokens: (B, L) int64 targets (padding ignored), or None for inference.
            token_lens: (B,) int64 target lengths.
            warp: (B,) test-time frequency-warp factors for the front end (:meth:`Frontend.forward`), or None.
            head: compute the CTC head's log-posteriors; False (inference only) leaves ``log_probs`` None, for
                decoders that read only ``hidden``: the head and its log-softmax are 3% of a FunASR-size
                Paraformer decode (a 256 x 5000 product and a softmax over 5000 tokens per frame).
        """
        feats, feat_lens = self.frontend(waves, wave_lens, warp)
        use_inter = self.training and tokens is not None and self.ctc_cfg.inter_weight > 0
        inter_layers = self.ctc_cfg.inter_layers if (use_inter or self.condition is not None) else ()
        enc = self.encoder(feats, feat_lens, inter_layers=inter_layers, condition=self.condition)
        if not head:
            if tokens is not None:
                raise ValueError("the CTC loss needs the head: head=False is for inference only")
            return CtcOutput(None, None, enc.y_lens, {}, enc.y)
        log_probs = self.head(enc.y).float().log_softmax(-1)
        if tokens is None:
            return CtcOutput(None, log_probs, enc.y_lens, {}, enc.y)
        loss = self._loss(log_probs, enc.y_lens, tokens, token_lens)
        metrics = {"ctc": loss.item()}
        if use_inter and enc.inter:
            inter = torch.stack([self._loss(self.head(h).float().log_softmax(-1), enc.y_lens, tokens, token_lens)
                                 for h in enc.inter]).mean()
            metrics["inter_ctc"] = inter.item()
            w = self.ctc_cfg.inter_weight
            loss = (1 - w) * loss + w * inter
        if self.training and self.ctc_cfg.prior_weight > 0:  # after the loss: a batch is scored with the prior
            self._update_prior(log_probs, enc.y_lens)          # of the batches before it
        return CtcOutput(loss, log_probs, enc.y_lens, metrics, enc.y)

    def _loss(self, log_probs: Tensor, lens: Tensor, tokens: Tensor, token_lens: Tensor) -> Tensor:
        if self.ctc_cfg.prior_weight > 0:
            return ctc_loss_unnormalized(self.alignment_scores(log_probs), lens, tokens, token_lens)
        return ctc_loss(log_probs, lens, tokens, token_lens)

    def alignment_scores(self, log_probs: Tensor) -> Tensor:
        """(..., V) log-posteriors -> the frame scores that training's CTC loss and forced alignment use:
        ``log_probs - prior_weight * log_prior`` for a label-prior model, else ``log_probs`` itself."""
        if self.ctc_cfg.prior_weight <= 0:
            return log_probs
        return log_probs - self.ctc_cfg.prior_weight * self.log_prior

    @torch.no_grad()
    def _update_prior(self, log_probs: Tensor, lens: Tensor) -> None:
        """Move the prior towards this batch's mean posterior over its valid frames (B, T', V), (B,). Under
        data-parallel training the mean is over every process's batch (all-reduced), so all ranks keep one prior."""
        valid = valid_mask(lens, log_probs.shape[1]).unsqueeze(-1)
        stats = torch.cat([(log_probs.exp() * valid).sum((0, 1)), valid.sum().reshape(1).to(log_probs.dtype)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        if stats[-1] < 1:  # no valid frame anywhere
            return
        m = self.ctc_cfg.prior_momentum
        mean = stats[:-1] / stats[-1]
        self.log_prior.copy_((m * self.log_prior.exp() + (1 - m) * mean).clamp(min=1e-10).log())

    @torch.no_grad()
    def recognize(self, waves: Tensor, wave_lens: Tensor, method: str = "greedy", beam_size: int = 10,
                  spans: bool = False, lm: LmFusion | None = None, warp: Tensor | None = None) -> list[Hypothesis]:
        """Decode a batch: method "greedy" or "beam" (prefix beam search, with n-gram shallow fusion when ``lm``
        is given); returns the best hypothesis per item, with ``spans`` (CTC forced alignment, from the same
        encoder pass) on request. ``warp``: (B,) test-time frequency-warp factors (:meth:`forward`)."""
        return self.decode_encoded(self(waves, wave_lens, warp=warp), method, beam_size, spans, lm)

    @torch.no_grad()
    def decode_encoded(self, out: CtcOutput, method: str = "greedy", beam_size: int = 10, spans: bool = False,
                       lm: LmFusion | None = None) -> list[Hypothesis]:
        """:meth:`recognize` after the encoder: decode ``out``, an output of this model (for callers that have
        already run the pass, such as test-time warps)."""
        if lm is not None and method != "beam":
            raise ValueError(f"LM fusion needs method 'beam', got {method!r}")
        if method == "greedy":
            hyps = greedy_decode(out.log_probs, out.lens)
        elif method == "beam":
            hyps = [nbest[0] for nbest in prefix_beam_search(out.log_probs, out.lens, beam_size, lm=lm)]
        else:
            raise ValueError(f"unknown CTC decoding method {method!r} (choices: greedy, beam)")
        return attach_spans(hyps, self.spans_of(out, hyps)) if spans else hyps

    @torch.no_grad()
    def token_spans(self, waves: Tensor, wave_lens: Tensor, hyps: list[Hypothesis]) -> list[list[TokenSpan]]:
        """Frames of every hypothesis token, by CTC forced alignment (empty where the tokens do not fit)."""
        return self.spans_of(self(waves, wave_lens), hyps)

    def spans_of(self, out: CtcOutput, hyps: list[Hypothesis]) -> list[list[TokenSpan]]:
        """Forced alignment of each hypothesis' tokens to this model's output ``out`` of the same batch."""
        scores = self.alignment_scores(out.log_probs)
        spans = []
        for b, hyp in enumerate(hyps):
            try:
                spans.append(forced_align(scores[b, : int(out.lens[b])], hyp.tokens))
            except ValueError:  # more tokens than frames (possible for attention decoders): no times
                spans.append([])
        return spans


def attach_spans(hyps: list[Hypothesis], spans: list[list[TokenSpan]]) -> list[Hypothesis]:
    """Set ``hyp.spans`` of every hypothesis (in place) and return the list."""
    for hyp, s in zip(hyps, spans, strict=True):
        hyp.spans = s
    return hyps


def ctc_loss(log_probs: Tensor, lens: Tensor, tokens: Tensor, token_lens: Tensor) -> Tensor:
    """Mean over utterances of the per-utterance CTC loss (summed over frames); infeasible items give 0."""
    loss = F.ctc_loss(log_probs.transpose(0, 1), tokens, lens, token_lens, blank=BLANK, reduction="none",
                      zero_infinity=True)
    return loss.mean()


def ctc_loss_unnormalized(scores: Tensor, lens: Tensor, tokens: Tensor, token_lens: Tensor) -> Tensor:
    """:func:`ctc_loss` of frame scores that need not sum to one per frame (label-prior CTC), with exact gradients.

    ``F.ctc_loss`` returns the right value for such scores but a wrong gradient (its backward assumes log-softmax
    inputs). Every path takes one label per frame, so ``-log sum_paths prod_t exp(s)`` equals the CTC loss of
    ``log_softmax(s)`` minus ``sum_t logsumexp(s_t)``, and both of those have correct gradients. Infeasible items
    (more frames needed than there are) give 0, as in :func:`ctc_loss`.
    """
    per_utt = F.ctc_loss(scores.log_softmax(-1).transpose(0, 1), tokens, lens, token_lens, blank=BLANK,
                         reduction="none", zero_infinity=True)
    frames = valid_mask(lens, scores.shape[1])
    log_norm = (scores.logsumexp(-1) * frames).sum(1)
    positions = torch.arange(tokens.shape[1], device=tokens.device)[None]
    repeats = ((tokens[:, 1:] == tokens[:, :-1]) & (positions[:, 1:] < token_lens[:, None])).sum(1)
    feasible = token_lens + repeats <= lens
    return torch.where(feasible, per_utt - log_norm, torch.zeros_like(per_utt)).mean()


# ----------------------------------------------------------------------------------------------------- decoding


@dataclass
class Hypothesis:
    """tokens: ids (no blank, bos or eos); frames: encoder frame where each token was emitted (CTC) or fired (CIF),
    -1 where a decoder does not know; score: log-prob of the decoder that produced it; spans: frames of every token
    (``recognize(..., spans=True)``; empty where the tokens cannot be aligned), else None."""

    tokens: list[int]
    frames: list[int]
    score: float
    spans: list[TokenSpan] | None = None


def greedy_decode(log_probs: Tensor, lens: Tensor) -> list[Hypothesis]:
    """Batched best-path decoding: argmax per frame, merge repeats, drop blanks. (B, T', V), (B,) -> B hyps."""
    best, ids = log_probs.max(-1)  # (B, T')
    t = ids.shape[1]
    valid = valid_mask(lens, t)
    prev = F.pad(ids, (1, 0), value=BLANK)[:, :-1]
    keep = (ids != BLANK) & (ids != prev) & valid
    scores = (best * valid).sum(-1)
    ids, keep, scores = ids.cpu(), keep.cpu(), scores.cpu()
    out = []
    for b in range(ids.shape[0]):
        frames = keep[b].nonzero().squeeze(1)
        out.append(Hypothesis(ids[b, frames].tolist(), frames.tolist(), float(scores[b])))
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(log_probs: Tensor, lens: Tensor, beam_size: int = 10, token_beam: int = 0,
                       blank_skip: float = 0.999, lm: LmFusion | None = None) -> list[list[Hypothesis]]:
    """CTC prefix beam search (sums over alignments of each prefix), with optional n-gram shallow fusion.

    Args:
        log_probs: (B, T', V) log-posteriors.
        lens: (B,) valid frames.
        beam_size: prefixes kept per frame.
        token_beam: tokens considered per frame (0 = beam_size).
        blank_skip: frames whose blank probability exceeds this are skipped (the prefix set cannot change much).
        lm: shallow fusion; prefixes then rank by CTC log-prob + weight * LM log-prob + length bonus, and
            ``Hypothesis.score`` is that fused score (end of sentence included).
    Returns:
        per utterance, the n-best list (best first).
    """
    token_beam = token_beam or beam_size
    lp_all = log_probs.detach().float().cpu()
    results = []
    for b in range(lp_all.shape[0]):
        lp = lp_all[b, : int(lens[b])]
        top_lp, top_ids = lp.topk(min(token_beam, lp.shape[-1]), dim=-1)
        blank_lp = lp[:, BLANK].tolist()
        # prefix -> (log P ending in blank, log P ending in non-blank, frame of last token)
        beams: dict[tuple[int, ...], tuple[float, float, list[int]]] = {(): (0.0, -math.inf, [])}
        fused: dict[tuple[int, ...], float] = {(): 0.0}  # weighted LM log-prob + length bonus of each prefix

        def extend(prefix: tuple[int, ...], new: tuple[int, ...]) -> None:
            if lm is not None and new not in fused:
                fused[new] = fused[prefix] + lm.weight * lm.scorer.score(prefix, new[-1]) + lm.length_bonus

        def rank(kv) -> float:
            return _logaddexp(kv[1][0], kv[1][1]) + fused.get(kv[0], 0.0)

        log_skip = math.log(blank_skip)
        for t in range(lp.shape[0]):
            if blank_lp[t] > log_skip:
                beams = {p: (_logaddexp(pb, pnb) + blank_lp[t], -math.inf, fr) for p, (pb, pnb, fr) in beams.items()}
                continue
            nxt: dict = defaultdict(lambda: [-math.inf, -math.inf, None])
            cand = list(zip(top_ids[t].tolist(), top_lp[t].tolist()))
            for prefix, (pb, pnb, frames) in beams.items():
                total = _logaddexp(pb, pnb)
                for tok, tok_lp in cand:
                    if tok == BLANK:
                        e = nxt[prefix]
                        e[0] = _logaddexp(e[0], total + tok_lp)
                        e[2] = e[2] or frames
                        continue
                    last = prefix[-1] if prefix else None
                    new = prefix + (tok,)
                    extend(prefix, new)
                    e = nxt[new]
                    if tok == last:  # repeat: only a path through blank starts a new token
                        e[1] = _logaddexp(e[1], pb + tok_lp)
                        same = nxt[prefix]
                        same[1] = _logaddexp(same[1], pnb + tok_lp)
                        same[2] = same[2] or frames
                    else:
                        e[1] = _logaddexp(e[1], total + tok_lp)
                    if e[2] is None:
                        e[2] = frames + [t]
                if BLANK not in top_ids[t].tolist():  # keep the prefix alive through a blank outside the top-k
                    e = nxt[prefix]
                    e[0] = _logaddexp(e[0], total + blank_lp[t])
                    e[2] = e[2] or frames
            alive = [kv for kv in nxt.items() if _logaddexp(kv[1][0], kv[1][1]) > -math.inf]
            ranked = sorted(alive, key=rank, reverse=True)[:beam_size]
            beams = {p: (v[0], v[1], v[2] or []) for p, v in ranked}
            if lm is not None:
                fused = {p: fused[p] for p in beams}
        if lm is not None:  # the end of sentence
            fused = {p: f + lm.weight * lm.scorer.score(p, EOS_ID) for p, f in fused.items()}
        ranked = sorted(beams.items(), key=rank, reverse=True)
        results.append([Hypothesis(list(p), list(v[2]), rank((p, v))) for p, v in ranked])
    return results


# ---------------------------------------------------------------------------------------------------- alignment


@dataclass
class TokenSpan:
    """A token aligned to encoder frames [start, end) (end exclusive)."""

    token: int
    start: int
    end: int


def forced_align(log_probs: Tensor, tokens: list[int]) -> list[TokenSpan]:
    """Viterbi CTC alignment of a known token sequence.

    Args:
        log_probs: (T', V) log-posteriors of one utterance (valid frames only).
        tokens: the L target ids (no blanks).
    Returns:
        L spans; a token's span covers the frames where the best path emits it (repeats included).
    Raises:
        ValueError when the utterance has too few frames for the tokens.
    """
    lp = log_probs.detach().float().cpu()
    t_max, L = lp.shape[0], len(tokens)
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    if L + repeats > t_max:
        raise ValueError(f"cannot align {L} tokens ({repeats} repeats) in {t_max} frames")
    if L == 0:
        return []
    states = torch.full((2 * L + 1,), BLANK, dtype=torch.long)
    states[1::2] = torch.tensor(tokens)
    S = states.numel()
    # a skip from state s-2 to s is allowed for non-blank s whose token differs from s-2's
    skip = torch.zeros(S, dtype=torch.bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    neg = -1e30
    score = torch.full((S,), neg)
    score[0], score[1] = lp[0, BLANK], lp[0, states[1]]
    back = torch.zeros(t_max, S, dtype=torch.long)
    emit = lp[:, states]  # (T, S)
    for t in range(1, t_max):
        stay = score
        step = torch.cat([torch.tensor([neg]), score[:-1]])
        jump = torch.where(skip, torch.cat([torch.tensor([neg, neg]), score[:-2]]), torch.tensor(neg))
        cand = torch.stack([stay, step, jump])  # (3, S)
        best, arg = cand.max(0)
        back[t] = arg
        score = best + emit[t]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    path = [0] * t_max
    for t in range(t_max - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    spans: list[TokenSpan] = []
    prev_state = -1
    for t, s in enumerate(path):
        if s % 2 == 1:
            if s != prev_state:
                spans.append(TokenSpan(int(states[s]), t, t + 1))
            else:
                spans[-1].end = t + 1
        prev_state = s
    return spans


@dataclass
class WordTime:
    word: str
    start_s: float
    end_s: float


def word_times(spans: list[TokenSpan], pieces: list[str], frame_shift_s: float, start_shift_s: float = 0.0,
               end_shift_s: float = 0.0) -> list[WordTime]:
    """Group token spans into words (a piece starting with '▁' opens a word) with times in seconds.

    A word starts at its first token's first frame and ends at its last token's last frame; ``start_shift_s`` and
    ``end_shift_s`` are then added (a model's calibrated emission delay, see ``speechseq align --calibrate``), with
    starts kept >= 0 and ends >= starts.
    """
    words: list[WordTime] = []
    for span, piece in zip(spans, pieces):
        start_new = piece.startswith("\u2581") or not words
        text = piece.lstrip("\u2581")
        if start_new:
            words.append(WordTime(text, span.start * frame_shift_s, span.end * frame_shift_s))
        else:
            words[-1].word += text
            words[-1].end_s = span.end * frame_shift_s
    for w in words:
        w.start_s = max(0.0, w.start_s + start_shift_s)
        w.end_s = max(w.start_s, w.end_s + end_shift_s)
    return [w for w in words if w.word]

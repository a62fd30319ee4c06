"""Paraformer: single-pass non-autoregressive ASR on the shared conformer encoder (Gao et al., 2022).

    encoder h (B, T', D) --CIF predictor--> alphas (B, T') --integrate-and-fire--> acoustic embeddings (B, N, D)
                                                  parallel decoder (no causal mask, cross-attends to h) --> tokens

* **CIF predictor**: Conv1d(k=3) -> ReLU -> Linear -> sigmoid gives one weight per encoder frame, computed in fp32
  even under autocast. Integrate-and-fire with threshold 1.0 turns the weights into token embeddings; it is
  vectorised (prefix sums: frame t gives token i the overlap of [c_{t-1}, c_t] with [i, i+1], c the cumulative
  weight), so there is no Python loop over frames.
* **Training**: the weights are scaled so that they sum to the target length N (tokens + <eos>), so exactly N tokens
  fire; the length (quantity) loss is |N - sum(alphas)|. The **glancing-LM sampler** runs the decoder once without
  gradients, counts the wrong positions d per utterance and replaces ``floor(d * sampling_ratio)`` random positions
  by target-token embeddings before the second pass that carries the loss. Loss =
  ``ctc_weight * CTC + (1 - ctc_weight) * CE(label smoothing) + predictor_weight * length loss`` (+ MWER).
* **MWER fine-tuning** (``mwer_weight > 0``): the decoder's first pass (the inference condition) runs with gradients;
  candidates are the greedy path plus ``mwer_candidates - 1`` others, either (``mwer_sampling="swap"``) the greedy
  path with a Bernoulli(0.5) subset of positions swapped to their second-best token, or (``"posterior"``) a token
  drawn at every position from the decoder's own distribution, which gives competitors as close as the model makes
  them, or (``"nbest"``) the exact k best sequences of the slot-factorised distribution; ``sum_k P(y_k) (err_k -
  mean err)`` with P renormalised over the candidates and err the token edit distance to the reference
  (rapidfuzz, :func:`candidate_errors`). ``mwer_slots="inference"`` decodes the candidates on the unscaled CIF
  weights with the inference tail instead of the target-length slots, so that their lengths, and thus insertions
  and deletions, are those of decoding.
* **Inference**: a zero frame with weight ``tail_threshold`` is appended so that a trailing token with at least
  1 - tail_threshold accumulated weight still fires; one decoder pass; the output stops at the first <eos>.
  Optionally a beam search over the CIF slots fuses a token n-gram LM (the slots stay fixed; the LM links them).
  Token times come from the CIF weights (the frames that fed each token).
Dims: B batch, T' encoder frames, D width, N tokens (including <eos>), V vocabulary, K MWER candidates.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein
from torch import Tensor, nn

from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.ctc import CtcConfig, CtcModel, CtcOutput, Hypothesis, TokenSpan, attach_spans
from speechseq.asr.frontend import Frontend, FrontendConfig
from speechseq.errors import ConfigError
from speechseq.layers.decoder import IGNORE, DecoderConfig, TransformerDecoder, append_eos, sinusoidal_positions
from speechseq.layers.dropout import Dropout
from speechseq.layers.masks import valid_mask
from speechseq.text.ngram import LmFusion
from speechseq.text.tokenizer import BLANK_ID, BOS_ID, EOS_ID



@dataclass
class ParaformerConfig:
    """Paraformer head.

    Attributes:
        decoder: the parallel decoder stack.
        ctc_weight: weight of the CTC loss on the encoder (0 disables the branch's loss; the head still exists).
        predictor_weight: weight of the CIF length loss.
        sampling_ratio: glancing-LM ratio lambda (0 = no sampler: one pass on the acoustic embeddings).
        label_smoothing: of the decoder CE.
        threshold: CIF firing threshold beta.
        tail_threshold: weight of the extra frame appended at inference.
        predictor_dropout: dropout on the predictor's hidden layer.
        mwer_weight: weight of the MWER loss (fine-tuning stage; 0 = off).
        mwer_candidates: hypotheses per utterance in MWER (the greedy one included).
        mwer_sampling: how the other candidates are drawn: "swap" (second-best tokens at random positions),
            "posterior" (every position sampled from the decoder's distribution) or "nbest" (the most probable
            sequences of the slot-factorised distribution, :func:`factorised_nbest`: the closest competitors).
        mwer_slots: the CIF slots MWER decodes on: "target" (weights scaled to the reference length, as the CE
            pass) or "inference" (the unscaled weights plus the inference tail, so candidates have the lengths
            that decoding will give them and MWER also sees insertions and deletions).
        span_min_weight: frames whose CIF weight is below this are silence for token timestamps.
    """

    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    ctc_weight: float = 0.3
    predictor_weight: float = 1.0
    sampling_ratio: float = 0.75
    label_smoothing: float = 0.1
    threshold: float = 1.0
    tail_threshold: float = 0.45
    predictor_dropout: float = 0.1
    mwer_weight: float = 0.0
    mwer_candidates: int = 4
    mwer_sampling: Literal["swap", "posterior", "nbest"] = "swap"
    mwer_slots: Literal["target", "inference"] = "target"
    span_min_weight: float = 0.05

    def __post_init__(self) -> None:
        if self.mwer_sampling not in ("swap", "posterior", "nbest"):
            raise ConfigError(f"paraformer.mwer_sampling must be 'swap', 'posterior' or 'nbest', got "
                              f"{self.mwer_sampling!r}")
        if self.mwer_slots not in ("target", "inference"):
            raise ConfigError(f"paraformer.mwer_slots must be 'target' or 'inference', got {self.mwer_slots!r}")


class CifPredictor(nn.Module):
    """Per-frame CIF weights alphas (B, T') in [0, 1] from the encoder output, zero on padding; always fp32."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1)
        self.drop = Dropout(dropout)
        self.proj = nn.Linear(d_model, 1)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h = (hidden.float() * mask[..., None]).transpose(1, 2)
            h = self.drop(torch.relu(self.conv(h))).transpose(1, 2)
            alphas = torch.sigmoid(self.proj.float()(h).squeeze(-1))
        return alphas * mask


def cif_weights(alphas: Tensor, num_tokens: int, threshold: float = 1.0) -> Tensor:
    """The (B, num_tokens, T') share of every frame in every token: the overlap of [c_{t-1}, c_t] with
    [i*beta, (i+1)*beta], c the cumulative weight. Token i has fired when c reaches (i+1)*beta."""
    c = alphas.float().cumsum(1)[:, None, :]  # (B, 1, T')
    c_prev = c - alphas.float()[:, None, :]
    lo = torch.arange(num_tokens, device=alphas.device, dtype=torch.float32)[None, :, None] * threshold
    return (torch.minimum(c, lo + threshold) - torch.maximum(c_prev, lo)).clamp(min=0.0)


def num_fired(alphas: Tensor, threshold: float = 1.0) -> Tensor:
    """(B,) tokens fired by weights alphas (B, T'); a 1e-4 tolerance absorbs the rounding of the weight sum."""
    return torch.floor(alphas.float().sum(1) / threshold + 1e-4).long()


def cif(hidden: Tensor, alphas: Tensor, threshold: float = 1.0, num_tokens: int | None = None) -> tuple[Tensor, Tensor]:
    """Vectorised integrate-and-fire.

    Args:
        hidden: (B, T', D) encoder output.
        alphas: (B, T') non-negative weights (zero on padding).
        threshold: firing threshold beta.
        num_tokens: rows to return (default: the most tokens any utterance fires).
    Returns:
        embeddings (B, N, D): token i = sum_t w_{i,t} h_t over the frames that fed it (rows past an utterance's
        fired count are zero, a partial last token is dropped), and the fired counts (B,).
    """
    fired = num_fired(alphas, threshold)
    n = int(fired.max()) if num_tokens is None else num_tokens
    if n == 0:
        return hidden.new_zeros(hidden.shape[0], 0, hidden.shape[2]), fired
    w = cif_weights(alphas, n, threshold)
    w = w * (torch.arange(n, device=w.device)[None, :] < fired[:, None])[..., None]
    return torch.bmm(w.to(hidden.dtype), hidden), fired


def fire_frames(alphas: Tensor, num_tokens: int, threshold: float = 1.0) -> Tensor:
    """(B, num_tokens) frame at which each token fires (the first t with c_t >= (i+1)*beta; T' if it never does)."""
    c = alphas.float().cumsum(1)
    bounds = (torch.arange(1, num_tokens + 1, device=alphas.device, dtype=torch.float32) * threshold - 1e-4)
    return torch.searchsorted(c.contiguous(), bounds[None].expand(c.shape[0], -1).contiguous())


def mwer_loss(cand_logp: Tensor, cand_err: Tensor) -> Tensor:
    """Minimum word error rate loss: mean over utterances of sum_k softmax_k(logp)_k * (err_k - mean_k err).

    Args:
        cand_logp: (B, K) sequence log-probabilities of the candidates (with gradient).
        cand_err: (B, K) their errors against the reference.
    """
    probs = torch.softmax(cand_logp.float(), dim=-1)
    err = cand_err.float()
    return (probs * (err - err.mean(-1, keepdim=True))).sum(-1).mean()


def mwer_candidates(logp: Tensor, k: int, sampling: str, valid: Tensor | None = None) -> Tensor:
    """(B, N, V) per-position log-probabilities -> (B, K, N) candidate token sequences: candidate 0 is the greedy
    path; the others swap a Bernoulli(0.5) subset of positions to the second-best token (``"swap"``) or draw every
    position from ``exp(logp)`` (``"posterior"``). With ``"posterior"``, positions outside ``valid`` (B, N) keep the
    greedy token, and a draw equal to the greedy path gets one random valid position swapped to its second-best
    token, so a confident decoder still sees competitors (identical candidates would give MWER no gradient).
    ``"nbest"``: the k most probable sequences over the valid positions (:func:`factorised_nbest`)."""
    b, n, v = logp.shape
    if sampling == "nbest":
        valid = torch.ones(b, n, dtype=torch.bool, device=logp.device) if valid is None else valid
        return torch.stack([factorised_nbest(logp[i], valid[i], k) for i in range(b)])
    greedy = logp.argmax(-1)
    second = logp.topk(2, dim=-1).indices[..., 1]
    if sampling == "swap":
        cands = torch.where(torch.rand(b, k, n, device=logp.device) < 0.5, second[:, None], greedy[:, None])
    elif sampling == "posterior":
        cands = torch.multinomial(logp.exp().reshape(b * n, v), k, replacement=True).view(b, n, k).transpose(1, 2)
        if valid is not None:
            cands = torch.where(valid[:, None], cands, greedy[:, None])
        same = (cands == greedy[:, None]).all(-1)  # (B, K)
        weights = torch.ones(b, n, device=logp.device) if valid is None else valid.float().clamp(min=1e-6)
        pick = torch.multinomial(weights, k, replacement=True)  # (B, K): a valid position per candidate
        swap = same[..., None] & (torch.arange(n, device=logp.device) == pick[..., None])
        cands = torch.where(swap, second[:, None], cands)
    else:
        raise ValueError(f"unknown MWER sampling {sampling!r} (choices: swap, posterior, nbest)")
    cands = cands.clone()
    cands[:, 0] = greedy
    return cands


def factorised_nbest(logp: Tensor, valid: Tensor, k: int) -> Tensor:
    """The k most probable token sequences of a distribution that factorises over positions (the parallel
    decoder's: one independent distribution per CIF slot). logp (N, V), valid (N,) -> (k, N), best first.

    A sequence is the greedy path with some valid positions changed to a lower-ranked token; its log-probability
    falls by the sum of those changes' costs ``logp[j, best] - logp[j, r]``. Any change among the k best
    sequences is one of the k cheapest single changes (each of those alone already beats a sequence containing a
    costlier one), so the search runs over those k only: subsets are enumerated in order of total cost with a heap
    (from a subset with last change i: add change i+1, or replace i by i+1), skipping those that change one position
    twice. Invalid positions keep their greedy token. If fewer than k sequences exist, the last one is repeated.
    Written here because no library enumerates the k best of a product distribution; the search is tiny (k <= V).
    """
    n, v = logp.shape
    greedy = logp.argmax(-1)
    out = [greedy]
    m = min(k, v)
    if n and m > 1 and bool(valid.any()):
        top_lp, top_id = logp.topk(m, dim=-1)  # (N, m)
        cost = (top_lp[:, :1] - top_lp[:, 1:]).masked_fill(~valid[:, None], float("inf"))  # (N, m-1)
        flat = cost.flatten()
        order = flat.argsort(stable=True)[: k - 1]
        order = order[torch.isfinite(flat[order])].tolist()
        changes = [(j // (m - 1), int(top_id[j // (m - 1), j % (m - 1) + 1])) for j in order]
        costs = [float(flat[j]) for j in order]
        heap: list[tuple[float, tuple[int, ...]]] = [(costs[0], (0,))] if changes else []
        while heap and len(out) < k:
            total, subset = heapq.heappop(heap)
            last = subset[-1]
            if last + 1 < len(changes):
                heapq.heappush(heap, (total + costs[last + 1], subset + (last + 1,)))
                heapq.heappush(heap, (total - costs[last] + costs[last + 1], subset[:-1] + (last + 1,)))
            positions = [changes[i][0] for i in subset]
            if len(set(positions)) < len(positions):
                continue  # one position changed twice: not a sequence (its heap children may be)
            seq = greedy.clone()
            for i in subset:
                seq[changes[i][0]] = changes[i][1]
            out.append(seq)
    while len(out) < k:
        out.append(out[-1])
    return torch.stack(out)


@dataclass
class ParaformerOutput:
    loss: Tensor | None
    metrics: dict[str, float]


class ParaformerModel(nn.Module):
    """Conformer encoder (with its CTC head) + CIF predictor + parallel decoder."""

    def __init__(self, frontend: FrontendConfig, encoder: ConformerConfig, ctc: CtcConfig, cfg: ParaformerConfig,
                 vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.ctc = CtcModel(frontend, encoder, ctc, vocab_size)
        d = encoder.d_model
        self.predictor = CifPredictor(d, cfg.predictor_dropout)
        self.decoder = TransformerDecoder(d, cfg.decoder)
        self.embed = nn.Embedding(vocab_size, d)  # target-token embeddings the sampler glances at
        self.out = nn.Linear(d, vocab_size)
        self.frame_shift_s = self.ctc.frame_shift_s

    @property
    def frontend(self) -> Frontend:
        return self.ctc.frontend

    def decode_logits(self, embeds: Tensor, lens: Tensor, hidden: Tensor, hidden_lens: Tensor) -> Tensor:
        """Parallel decoder: (B, N, D) embeddings, N valid per utterance -> (B, N, V) logits."""
        n = embeds.shape[1]
        x = embeds + sinusoidal_positions(n, embeds.shape[2], device=embeds.device).to(embeds.dtype)
        keys = valid_mask(lens, n)
        self_mask = keys[:, None, :].expand(-1, n, -1)
        y, _ = self.decoder(x, self_mask, self.decoder.memory_kv(hidden), valid_mask(hidden_lens, hidden.shape[1]))
        return self.out(y)

    def forward(self, waves: Tensor, wave_lens: Tensor, tokens: Tensor | None = None,
                token_lens: Tensor | None = None) -> ParaformerOutput:
        if tokens is None or token_lens is None:
            raise ValueError("ParaformerModel.forward needs targets; use recognize() for inference")
        cfg = self.cfg
        enc = self.ctc(waves, wave_lens, tokens, token_lens)
        hidden, hidden_lens = enc.hidden, enc.lens
        frame_mask = valid_mask(hidden_lens, hidden.shape[1])
        alphas = self.predictor(hidden, frame_mask)
        target = append_eos(tokens, token_lens)  # (B, N)
        n_target = (token_lens + 1).float()
        length_loss = (alphas.sum(1) - n_target * cfg.threshold).abs().mean()
        scaled = alphas * (n_target * cfg.threshold / alphas.sum(1).clamp(min=1e-6))[:, None]
        embeds, _ = cif(hidden, scaled, cfg.threshold, num_tokens=target.shape[1])
        lens = token_lens + 1
        pos_valid = target != IGNORE
        metrics: dict[str, float] = {}
        mwer = None
        need_grad = cfg.mwer_weight > 0 and self.training
        on_target = need_grad and cfg.mwer_slots == "target"  # MWER reads this pass: it needs its gradient
        with torch.set_grad_enabled(on_target and torch.is_grad_enabled()):
            logits1 = self.decode_logits(embeds, lens, hidden, hidden_lens)
        pred1 = logits1.argmax(-1)
        correct = ((pred1 == target) & pos_valid).sum()
        metrics["acc"] = (correct.float() / pos_valid.sum().clamp(min=1)).item()
        if need_grad:
            if on_target:
                mwer = self._mwer(logits1, target, pos_valid)
            else:
                mwer = self._mwer_inference_slots(hidden, hidden_lens, alphas, target, pos_valid)
            metrics["mwer"] = mwer.item()
        if cfg.sampling_ratio > 0 and self.training:
            embeds = self._glance(embeds, pred1, target, pos_valid)
            logits = self.decode_logits(embeds, lens, hidden, hidden_lens)
        else:
            logits = logits1 if on_target else self.decode_logits(embeds, lens, hidden, hidden_lens)
        ce = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=IGNORE,
                             label_smoothing=cfg.label_smoothing, reduction="sum") / tokens.shape[0]
        metrics.update(att=ce.item(), length=length_loss.item(), ctc=enc.metrics["ctc"])
        loss = cfg.ctc_weight * enc.loss + (1 - cfg.ctc_weight) * ce + cfg.predictor_weight * length_loss
        if mwer is not None:
            loss = loss + cfg.mwer_weight * mwer
        return ParaformerOutput(loss, metrics)

    def _glance(self, embeds: Tensor, pred: Tensor, target: Tensor, pos_valid: Tensor) -> Tensor:
        """Glancing-LM sampler: per utterance replace floor(hamming * ratio) random valid positions by the target
        token embedding."""
        return glance(embeds, self.embed(target.clamp(min=0)), pred, target, pos_valid, self.cfg.sampling_ratio)

    def _mwer(self, logits: Tensor, target: Tensor, pos_valid: Tensor) -> Tensor:
        """MWER on the target-length slots of the CE pass."""
        return self._mwer_loss(logits.float().log_softmax(-1), pos_valid, target, pos_valid)

    def _mwer_inference_slots(self, hidden: Tensor, hidden_lens: Tensor, alphas: Tensor, target: Tensor,
                              pos_valid: Tensor) -> Tensor:
        """MWER on the slots decoding would use: the unscaled weights plus the tail fire as many tokens as the
        predictor says (not the reference's count), the decoder reads them as :meth:`recognize` does, and each
        candidate is scored against the reference by edit distance, so too many or too few slots count as
        insertions or deletions."""
        a_ext, h_ext = append_tail(alphas, hidden, hidden_lens, self.cfg.tail_threshold)
        embeds, fired = cif(h_ext, a_ext, self.cfg.threshold)
        if embeds.shape[1] == 0:
            return alphas.sum() * 0.0
        logp = self._slot_logp(embeds, fired, hidden, hidden_lens)
        return self._mwer_loss(logp, valid_mask(fired, logp.shape[1]), target, pos_valid)

    def _mwer_loss(self, logp: Tensor, valid: Tensor, target: Tensor, pos_valid: Tensor) -> Tensor:
        """Candidates from per-slot log-probs (B, N, V) whose slots ``valid`` (B, N) hold the hypothesis, their
        sequence log-probs (with gradient) and edit distances to the reference -> :func:`mwer_loss`."""
        k = self.cfg.mwer_candidates
        cands = mwer_candidates(logp.detach(), k, self.cfg.mwer_sampling, valid)  # (B, K, N)
        picked = logp[:, None].expand(-1, k, -1, -1).gather(-1, cands[..., None]).squeeze(-1)
        cand_logp = torch.where(valid[:, None], picked, 0.0).sum(-1)
        errs = candidate_errors(cands, valid.sum(1), target, pos_valid)
        return mwer_loss(cand_logp, errs)

    def _slot_logp(self, embeds: Tensor, fired: Tensor, hidden: Tensor, hidden_lens: Tensor) -> Tensor:
        """The decoder's (B, N, V) log-probs over inference CIF slots, with blank and <bos> at -inf: they are never
        targets, so token j of a hypothesis stays CIF slot j."""
        logp = self.decode_logits(embeds, fired, hidden, hidden_lens).float().log_softmax(-1)
        never = torch.zeros(logp.shape[-1], dtype=torch.bool, device=logp.device)
        never[[BLANK_ID, BOS_ID]] = True
        return logp.masked_fill(never, float("-inf"))

    @torch.no_grad()
    def recognize(self, waves: Tensor, wave_lens: Tensor, method: str = "greedy", beam_size: int = 10,
                  spans: bool = False, lm: LmFusion | None = None, warp: Tensor | None = None) -> list[Hypothesis]:
        """One parallel pass, then "greedy" (the best token of every CIF slot) or "beam" (:func:`slot_beam_search`
        over the same slots, with n-gram shallow fusion when ``lm``; without an LM it returns the greedy result).
        ``spans``: also give every token's frames from the same pass's CIF weights (see :meth:`token_spans`).
        ``warp``: (B,) test-time frequency-warp factors for the front end (:meth:`CtcModel.forward`)."""
        # neither the slots nor their spans read the CTC posteriors
        return self.decode_encoded(self.ctc(waves, wave_lens, warp=warp, head=False), method, beam_size, spans, lm)

    @torch.no_grad()
    def decode_encoded(self, enc: CtcOutput, method: str = "greedy", beam_size: int = 10, spans: bool = False,
                       lm: LmFusion | None = None) -> list[Hypothesis]:
        """:meth:`recognize` after the encoder: decode ``enc``, an output of ``self.ctc`` (for callers that also
        need the CTC posteriors of the same pass, such as ensembles)."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"unknown Paraformer decoding method {method!r} (choices: greedy, beam)")
        if lm is not None and method != "beam":
            raise ValueError(f"LM fusion needs method 'beam', got {method!r}")
        hidden, hidden_lens = enc.hidden, enc.lens
        alphas, hidden_ext = self._inference_alphas(hidden, hidden_lens)
        embeds, fired = cif(hidden_ext, alphas, self.cfg.threshold)
        out = []
        if embeds.shape[1] == 0:
            return [Hypothesis([], [], 0.0, [] if spans else None) for _ in range(hidden.shape[0])]
        logp = self._slot_logp(embeds, fired, hidden, hidden_lens)
        best, ids = logp.max(-1)
        frames = fire_frames(alphas, embeds.shape[1], self.cfg.threshold)
        for b in range(hidden.shape[0]):
            n = int(fired[b])
            if method == "beam" and lm is not None:
                row, score = slot_beam_search(logp[b, :n], beam_size, lm)
                stop = len(row)
            else:
                row = ids[b, :n].tolist()
                stop = row.index(EOS_ID) if EOS_ID in row else n
                row, score = row[:stop], float(best[b, :stop].sum())
            hframes = frames[b, :stop].clamp(max=max(int(hidden_lens[b]) - 1, 0)).tolist()
            out.append(Hypothesis(row, hframes, score))
        return attach_spans(out, self._cif_spans(alphas, hidden_lens, out)) if spans else out

    def _inference_alphas(self, hidden: Tensor, hidden_lens: Tensor) -> tuple[Tensor, Tensor]:
        alphas = self.predictor(hidden, valid_mask(hidden_lens, hidden.shape[1]))
        return append_tail(alphas, hidden, hidden_lens, self.cfg.tail_threshold)

    @torch.no_grad()
    def token_spans(self, waves: Tensor, wave_lens: Tensor, hyps: list[Hypothesis]) -> list[list[TokenSpan]]:
        """Frames of every token of hypotheses from :meth:`recognize` (token i = CIF slot i) from the CIF weights: the
        frames that fed the token, less the frames whose weight is below ``span_min_weight`` (silence)."""
        enc = self.ctc(waves, wave_lens, head=False)
        alphas, _ = self._inference_alphas(enc.hidden, enc.lens)
        return self._cif_spans(alphas, enc.lens, hyps)

    def _cif_spans(self, alphas: Tensor, hidden_lens: Tensor, hyps: list[Hypothesis]) -> list[list[TokenSpan]]:
        fired = num_fired(alphas, self.cfg.threshold)
        out = []
        for b, hyp in enumerate(hyps):
            n, t_len = int(fired[b]), int(hidden_lens[b])
            if n == 0 or not hyp.tokens:
                out.append([])
                continue
            a = alphas[b : b + 1, :t_len]
            w = cif_weights(a, n, self.cfg.threshold)[0]  # (n, T')
            strong = (w > 0) & (a >= self.cfg.span_min_weight)
            spans = []
            for i, token in enumerate(hyp.tokens[:n]):  # token i came from CIF slot i
                cols = strong[i].nonzero().squeeze(1)
                cols = cols if cols.numel() else (w[i] > 0).nonzero().squeeze(1)
                start, end = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (t_len - 1, t_len)
                spans.append(TokenSpan(token, start, end))
            out.append(spans)
        return out


def slot_beam_search(logp: Tensor, beam_size: int, lm: LmFusion) -> tuple[list[int], float]:
    """Beam search over the CIF slots of one utterance with n-gram shallow fusion: logp (N, V) -> (tokens, score).

    Slot j holds one token; the decoder's distributions are independent across slots, so the LM is what links
    them. A prefix extended by token c at slot j gains ``logp[j, c] + weight * log p_lm(c | prefix) + length_bonus``;
    <eos> ends it (``logp[j, <eos>] + weight * log p_lm(</s> | prefix)``) and an ended prefix takes the best token of
    every later slot, so that with ``weight = length_bonus = 0`` the search returns exactly the greedy result. A
    prefix alive after the last slot gets the LM's end of sentence. Candidates per slot: its ``beam_size`` best
    tokens. The returned score is the tokens' log-probs plus the LM terms and bonuses (with a silent LM: the
    greedy score).
    """
    n, v = logp.shape
    if n == 0:
        return [], 0.0
    top_lp, top_id = logp.topk(min(beam_size, v), dim=-1)
    slot_max = top_lp[:, 0].tolist()
    cand = list(zip(top_id.tolist(), top_lp.tolist()))
    w, bonus = lm.weight, lm.length_bonus
    # beam entries: (rank score, reported score, tokens, ended)
    beam: list[tuple[float, float, tuple[int, ...], bool]] = [(0.0, 0.0, (), False)]
    for j in range(n):
        ids, lps = cand[j]
        grown = []
        for rank, score, toks, ended in beam:
            if ended:
                grown.append((rank + slot_max[j], score, toks, True))
                continue
            for c, lp in zip(ids, lps):
                lm_term = w * lm.scorer.score(toks, c)
                if c == EOS_ID:
                    grown.append((rank + lp + lm_term, score + lm_term, toks, True))
                else:
                    grown.append((rank + lp + lm_term + bonus, score + lp + lm_term + bonus, toks + (c,), False))
        grown.sort(key=lambda e: -e[0])
        beam = grown[:beam_size]
    end = [0.0 if ended else w * lm.scorer.score(toks, EOS_ID) for _, _, toks, ended in beam]  # alive: </s>
    best = max(range(len(beam)), key=lambda i: beam[i][0] + end[i])
    return list(beam[best][2]), beam[best][1] + end[best]


def append_tail(alphas: Tensor, hidden: Tensor, lens: Tensor, tail_threshold: float) -> tuple[Tensor, Tensor]:
    """Inference tail: weight ``tail_threshold`` added at position ``lens`` of alphas (B, T'+1) on a zero frame of
    hidden (B, T'+1, D) (one appended frame, and every padding frame zeroed, so that a shorter utterance of a batch
    gets the same tail as alone), so that a trailing token with at least 1 - tail_threshold accumulated still fires.
    Utterances without frames get no tail."""
    alphas = F.pad(alphas, (0, 1))
    alphas[torch.arange(alphas.shape[0], device=alphas.device), lens] += tail_threshold
    hidden = hidden * valid_mask(lens, hidden.shape[1])[..., None].to(hidden.dtype)
    return alphas * (lens > 0)[:, None], F.pad(hidden, (0, 0, 0, 1))


def glance(embeds: Tensor, target_embeds: Tensor, pred: Tensor, target: Tensor, pos_valid: Tensor,
           ratio: float) -> Tensor:
    """Replace, per utterance, ``floor(hamming(pred, target) * ratio)`` positions drawn at random among the valid ones
    by the target embeddings. embeds, target_embeds (B, N, D); pred, target, pos_valid (B, N)."""
    wrong = ((pred != target) & pos_valid).sum(1)
    n_glance = torch.floor(wrong.float() * ratio).long()  # (B,)
    noise = torch.rand(pred.shape, device=pred.device).masked_fill(~pos_valid, 2.0)
    rank = noise.argsort(1).argsort(1)  # random rank of each valid position (invalid ones rank last)
    pick = (rank < n_glance[:, None]) & pos_valid
    return torch.where(pick[..., None], target_embeds.to(embeds.dtype), embeds)


def candidate_errors(cands: Tensor, cand_lens: Tensor, target: Tensor, pos_valid: Tensor) -> Tensor:
    """(B, K) token edit distances (rapidfuzz's Levenshtein) between candidates (B, K, N), each made of its first
    ``cand_lens`` (B,) slots and cut at its first <eos>, and the reference: the valid (B, N') ``target`` positions
    other than <eos>. Each tensor goes to the host in one copy (one device sync), not pair by pair: 3x faster on
    CPU, and a vectorised DP on the device was slower still (``benchmarks/bench_mwer_errors.py``)."""
    c, lens, t, v = cands.tolist(), cand_lens.tolist(), target.tolist(), pos_valid.tolist()
    errs = []
    for cand_b, n, ref_b, valid_b in zip(c, lens, t, v):
        ref = [tok for tok, ok in zip(ref_b, valid_b) if ok and tok != EOS_ID]
        row = []
        for hyp in cand_b:
            hyp = hyp[:n]
            row.append(Levenshtein.distance(hyp[: hyp.index(EOS_ID)] if EOS_ID in hyp else hyp, ref))
        errs.append(row)
    return torch.tensor(errs, device=cands.device)

"""Autoregressive attention-decoder (AED) ASR on the shared conformer encoder: the baseline Paraformer must beat.

Joint CTC/attention training (Kim et al., 2017): ``ctc_weight * CTC + (1 - ctc_weight) * CE(label smoothing)``, the
decoder reading ``<bos> y`` and predicting ``y <eos>`` under a causal mask.

Decoding (all batched over utterances and beams, with a KV cache: each step feeds one token per hypothesis and
reuses the self-attention keys/values of the earlier steps and the cross-attention keys/values of the encoder):
* greedy: argmax per step until every utterance has emitted <eos>;
* beam search: the K best prefixes per utterance by summed log-prob; a finished prefix stays in the beam with a
  frozen score; the winner maximises score / length (length normalisation) when ``length_norm``; optionally
  ``ctc_weight`` mixes in CTC prefix scores of the ``ctc_candidates`` best attention tokens per prefix
  (Watanabe et al., 2017), computed by a time-vectorised CTC prefix scorer.
Dims: B batch, K beam, T' encoder frames, D width, L tokens, V vocabulary, C CTC candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.ctc import BLANK, CtcConfig, CtcModel, CtcOutput, Hypothesis, TokenSpan, attach_spans
from speechseq.asr.frontend import Frontend, FrontendConfig
from speechseq.layers.decoder import IGNORE, KV, DecoderConfig, TransformerDecoder, append_eos, sinusoidal_positions
from speechseq.layers.masks import valid_mask
from speechseq.text.ngram import LmFusion
from speechseq.text.tokenizer import BOS_ID, EOS_ID

NEG = -1e10


@dataclass
class AedConfig:
    """Attention-decoder head and its search.

    Attributes:
        decoder: the autoregressive decoder stack.
        ctc_weight: weight of the CTC loss in training.
        label_smoothing: of the decoder CE.
        beam_size: default beam for ``recognize(method="beam")``.
        length_norm: pick the final hypothesis by score / length.
        decode_ctc_weight: weight of CTC prefix scores in beam search (0 = attention only).
        ctc_candidates: attention tokens per prefix rescored by CTC (0 = 1.5 x beam).
        max_len_ratio: at most this many tokens per encoder frame are decoded.
    """

    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    beam_size: int = 10
    length_norm: bool = True
    decode_ctc_weight: float = 0.0
    ctc_candidates: int = 0
    max_len_ratio: float = 1.0


@dataclass
class AedOutput:
    loss: Tensor | None
    metrics: dict[str, float]


@dataclass
class DecoderState:
    """What a decoding step carries: encoder keys/values per layer, the encoder mask (N, T'), the self-attention
    cache per layer and the number of positions already decoded."""

    memory_kv: list[KV]
    memory_mask: Tensor
    cache: list[KV] | None
    offset: int

    def select(self, index: Tensor) -> "DecoderState":
        """Reorder the hypotheses (rows) by index (beam search)."""
        cache = None if self.cache is None else [(k[index], v[index]) for k, v in self.cache]
        return DecoderState(self.memory_kv, self.memory_mask, cache, self.offset)


def teacher_forcing(tokens: Tensor, token_lens: Tensor) -> tuple[Tensor, Tensor]:
    """(B, L) token ids (padding anything) -> the decoder's (B, L+1) inputs (<bos>, then the tokens, <eos> as
    padding) and targets (the tokens, <eos>, IGNORE beyond)."""
    valid = valid_mask(token_lens, tokens.shape[1])
    bos = torch.full((tokens.shape[0], 1), BOS_ID, dtype=tokens.dtype, device=tokens.device)
    return torch.cat([bos, torch.where(valid, tokens, EOS_ID)], 1), append_eos(tokens, token_lens)


class AedModel(nn.Module):
    """Conformer encoder (with its CTC head) + autoregressive transformer decoder."""

    def __init__(self, frontend: FrontendConfig, encoder: ConformerConfig, ctc: CtcConfig, cfg: AedConfig,
                 vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.ctc = CtcModel(frontend, encoder, ctc, vocab_size)
        d = encoder.d_model
        self.d_model = d
        self.embed = nn.Embedding(vocab_size, d)
        self.decoder = TransformerDecoder(d, cfg.decoder)
        self.out = nn.Linear(d, vocab_size)
        self.frame_shift_s = self.ctc.frame_shift_s

    @property
    def frontend(self) -> Frontend:
        return self.ctc.frontend

    def _embed(self, tokens: Tensor, offset: int) -> Tensor:
        x = self.embed(tokens) * math.sqrt(self.d_model)
        return x + sinusoidal_positions(tokens.shape[1], self.d_model, offset, tokens.device).to(x.dtype)

    def forward(self, waves: Tensor, wave_lens: Tensor, tokens: Tensor | None = None,
                token_lens: Tensor | None = None) -> AedOutput:
        if tokens is None or token_lens is None:
            raise ValueError("AedModel.forward needs targets; use recognize() for inference")
        enc = self.ctc(waves, wave_lens, tokens, token_lens)
        b = tokens.shape[0]
        inp, target = teacher_forcing(tokens, token_lens)
        logits = self.decode_full(inp, enc.hidden, enc.lens)
        ce = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=IGNORE,
                             label_smoothing=self.cfg.label_smoothing, reduction="sum") / b
        pos = target != IGNORE
        acc = ((logits.argmax(-1) == target) & pos).sum().float() / pos.sum().clamp(min=1)
        w = self.cfg.ctc_weight
        loss = w * enc.loss + (1 - w) * ce
        return AedOutput(loss, {"ctc": enc.metrics["ctc"], "att": ce.item(), "acc": acc.item()})

    def decode_full(self, inp: Tensor, hidden: Tensor, hidden_lens: Tensor) -> Tensor:
        """Teacher-forced causal pass without a cache: (B, L) input ids -> (B, L, V) logits."""
        L = inp.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=inp.device).tril()[None].expand(inp.shape[0], -1, -1)
        y, _ = self.decoder(self._embed(inp, 0), causal, self.decoder.memory_kv(hidden),
                            valid_mask(hidden_lens, hidden.shape[1]))
        return self.out(y)

    @torch.no_grad()
    def nbest_encoded(self, enc: CtcOutput, beam_size: int | None = None,
                      lm: LmFusion | None = None) -> list[list[Hypothesis]]:
        """Beam search's whole n-best (:meth:`beam_nbest`) of ``enc``, an output of ``self.ctc``, with the default
        token budget: the proposals of an AED ensemble member."""
        return self.beam_nbest(enc.hidden, enc.lens, beam_size or self.cfg.beam_size, 0, self._max_lens(enc.lens, None),
                               enc.log_probs, lm)

    @torch.no_grad()
    def sequence_log_probs(self, hidden: Tensor, token_seqs: list[list[int]]) -> Tensor:
        """log p(tokens, <eos> | x) under the decoder (teacher-forced), for each of ``token_seqs`` against one
        utterance's (T', D) encoder output: (N,) float64 on the CPU. Without encoder frames every score is 0 (the
        decoder has nothing to attend to, so it has no say)."""
        n = len(token_seqs)
        if n == 0 or hidden.shape[0] == 0:
            return torch.zeros(n, dtype=torch.float64)
        dev = next(self.parameters()).device
        lens = torch.tensor([len(s) for s in token_seqs], device=dev)
        tokens = torch.zeros(n, int(lens.max()), dtype=torch.long, device=dev)
        for i, seq in enumerate(token_seqs):
            tokens[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        inp, target = teacher_forcing(tokens, lens)
        memory = hidden.to(dev)[None].expand(n, -1, -1)
        logp = self.decode_full(inp, memory, torch.full((n,), hidden.shape[0], device=dev)).float().log_softmax(-1)
        picked = logp.gather(-1, target.clamp(min=0)[..., None])[..., 0].masked_fill(target == IGNORE, 0.0)
        return picked.sum(1).double().cpu()

    def init_state(self, hidden: Tensor, hidden_lens: Tensor) -> DecoderState:
        return DecoderState(self.decoder.memory_kv(hidden), valid_mask(hidden_lens, hidden.shape[1]), None, 0)

    def step(self, last: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One cached step: last (N,) token ids -> (N, V) log-probs of the next token and the new state."""
        n = last.shape[0]
        self_mask = torch.ones(n, 1, state.offset + 1, dtype=torch.bool, device=last.device)
        y, cache = self.decoder(self._embed(last[:, None], state.offset), self_mask, state.memory_kv,
                                state.memory_mask, state.cache)
        logp = self.out(y[:, -1]).float().log_softmax(-1)
        return logp, DecoderState(state.memory_kv, state.memory_mask, cache, state.offset + 1)

    def _max_lens(self, hidden_lens: Tensor, max_len: int | None) -> Tensor:
        """(B,) token budget per item: ``max_len`` for all, else ``max_len_ratio`` x the item's own encoder frames
        (per item, so that a hypothesis never depends on the other utterances of its batch). An item without encoder
        frames (a clip too short for one) gets 0: it ends at once with an empty hypothesis."""
        if max_len is not None:
            budget = torch.full_like(hidden_lens, max_len)
        else:
            budget = (hidden_lens.double() * self.cfg.max_len_ratio).ceil().long().clamp(min=1)
        return torch.where(hidden_lens > 0, budget, 0)

    @torch.no_grad()
    def recognize(self, waves: Tensor, wave_lens: Tensor, method: str = "greedy", beam_size: int | None = None,
                  spans: bool = False, min_len: int = 0, max_len: int | None = None,
                  lm: LmFusion | None = None, warp: Tensor | None = None) -> list[Hypothesis]:
        """Decode a batch: "greedy" or "beam" (K = beam_size, default ``cfg.beam_size``).

        ``spans``: also align every hypothesis with the encoder's CTC head (same encoder pass). ``min_len``/
        ``max_len`` bound the tokens decoded (<eos> is forbidden before min_len; default max_len: ``max_len_ratio``
        x the utterance's encoder frames). ``lm``: n-gram shallow fusion in the beam search. ``warp``: (B,) test-time
        frequency-warp factors for the front end (:meth:`CtcModel.forward`).
        """
        # the CTC posteriors are read only by the spans' alignment and by CTC prefix scoring in the beam search
        head = spans or (method == "beam" and self.cfg.decode_ctc_weight > 0)
        return self.decode_encoded(self.ctc(waves, wave_lens, warp=warp, head=head), method, beam_size, spans,
                                   min_len, max_len, lm)

    @torch.no_grad()
    def decode_encoded(self, enc: CtcOutput, method: str = "greedy", beam_size: int | None = None,
                       spans: bool = False, min_len: int = 0, max_len: int | None = None,
                       lm: LmFusion | None = None) -> list[Hypothesis]:
        """:meth:`recognize` after the encoder: decode ``enc``, an output of ``self.ctc`` (for callers that also
        need the CTC posteriors of the same pass, such as ensembles)."""
        if lm is not None and method != "beam":
            raise ValueError(f"LM fusion needs method 'beam', got {method!r}")
        max_lens = self._max_lens(enc.lens, max_len)
        if method == "greedy":
            hyps = self.greedy_search(enc.hidden, enc.lens, min_len, max_lens)
        elif method == "beam":
            hyps = self.beam_search(enc.hidden, enc.lens, beam_size or self.cfg.beam_size, min_len, max_lens,
                                    enc.log_probs, lm)
        else:
            raise ValueError(f"unknown AED decoding method {method!r} (choices: greedy, beam)")
        return attach_spans(hyps, self.ctc.spans_of(enc, hyps)) if spans else hyps

    def _mask_special(self, logp: Tensor, step: int, min_len: int, capped: Tensor) -> Tensor:
        """No <blank> or <bos>; no <eos> before ``min_len``; rows out of their token budget (``capped``) may only
        emit <eos>, with its real log-prob, so that a hypothesis cut by ``max_len`` still pays for ending there."""
        eos = logp[:, EOS_ID].clone()
        logp[:, BLANK] = NEG
        logp[:, BOS_ID] = NEG
        if step < min_len:
            logp[:, EOS_ID] = NEG
        if bool(capped.any()):
            logp = logp.masked_fill(capped[:, None], NEG)
            logp[:, EOS_ID] = torch.where(capped, eos, logp[:, EOS_ID])
        return logp

    def greedy_search(self, hidden: Tensor, hidden_lens: Tensor, min_len: int, max_lens: Tensor) -> list[Hypothesis]:
        """Batched greedy search; item b stops at <eos> or after ``max_lens[b]`` tokens (then its score still
        includes the log-prob of <eos> after them)."""
        b = hidden.shape[0]
        state = self.init_state(hidden, hidden_lens)
        last = torch.full((b,), BOS_ID, dtype=torch.long, device=hidden.device)
        done = torch.zeros(b, dtype=torch.bool, device=hidden.device)
        scores = torch.zeros(b, device=hidden.device)
        out: list[list[int]] = [[] for _ in range(b)]
        for t in range(int(max_lens.max()) + 1):
            if bool(done.all()):
                break
            capped = ~done & (t >= max_lens)  # out of budget: must emit <eos> now
            logp, state = self.step(last, state)
            best, last = self._mask_special(logp, t, min_len, capped).max(-1)
            scores += torch.where(done, 0.0, best)
            for i in (~done & (last != EOS_ID)).nonzero().squeeze(1).tolist():
                out[i].append(int(last[i]))
            done |= last == EOS_ID
        return [Hypothesis(out[i], [-1] * len(out[i]), float(scores[i])) for i in range(b)]

    def beam_search(self, hidden: Tensor, hidden_lens: Tensor, beam_size: int, min_len: int, max_lens: Tensor,
                    ctc_log_probs: Tensor | None = None, lm: LmFusion | None = None) -> list[Hypothesis]:
        """The best hypothesis of every item's :meth:`beam_nbest`."""
        return [nbest[0] for nbest in self.beam_nbest(hidden, hidden_lens, beam_size, min_len, max_lens,
                                                      ctc_log_probs, lm)]

    def beam_nbest(self, hidden: Tensor, hidden_lens: Tensor, beam_size: int, min_len: int, max_lens: Tensor,
                   ctc_log_probs: Tensor | None = None, lm: LmFusion | None = None) -> list[list[Hypothesis]]:
        """Batched beam search: every item's ``beam_size`` final hypotheses, best first (by score / (tokens + 1)
        with ``cfg.length_norm``; scores stay unnormalised). Item b's hypotheses stop at <eos> or after
        ``max_lens[b]`` tokens, where they must emit <eos> and get its score (attention, CTC and LM terms) like any
        ending hypothesis; a finished hypothesis keeps its score and length, so an item decodes the same alone or in
        any batch. With ``lm``,
        the candidates of each prefix (its top tokens after CTC mixing, as many as for CTC prefix scoring) get
        ``weight * log p_lm(token | prefix) + length_bonus`` (``<eos>``: the LM's end of sentence, no bonus)."""
        b, k, v = hidden.shape[0], beam_size, self.vocab_size
        dev = hidden.device
        n = b * k
        state = self.init_state(hidden.repeat_interleave(k, 0), hidden_lens.repeat_interleave(k, 0))
        tokens = torch.full((n, 1), BOS_ID, dtype=torch.long, device=dev)
        scores = torch.zeros(b, k, device=dev)
        scores[:, 1:] = NEG  # one live prefix at the start
        ended = torch.zeros(n, dtype=torch.bool, device=dev)
        lengths = torch.zeros(n, device=dev)
        use_ctc = self.cfg.decode_ctc_weight > 0 and ctc_log_probs is not None
        if use_ctc:
            ctc = CtcPrefixScorer(ctc_log_probs.repeat_interleave(k, 0), hidden_lens.repeat_interleave(k, 0))
            ctc_state = ctc.initial_state()
        row_max = max_lens.repeat_interleave(k, 0)
        for t in range(int(max_lens.max()) + 1):
            if bool(ended.all()):
                break
            capped = ~ended & (t >= row_max)  # out of budget: must emit <eos> now (and pay for it)
            logp, state = self.step(tokens[:, -1], state)
            logp = self._mask_special(logp, t, min_len, capped)
            if use_ctc:
                lam = self.cfg.decode_ctc_weight
                c = min(v, self.cfg.ctc_candidates or int(1.5 * k) + 1)
                cand = logp.topk(c, dim=-1).indices  # (N, C)
                ctc_scores, ctc_next = ctc.score(tokens, cand, ctc_state)  # (N, C) prefix-score increments
                mixed = torch.full_like(logp, NEG)
                mixed.scatter_(1, cand, (1 - lam) * logp.gather(1, cand) + lam * ctc_scores)
                logp = mixed
            if lm is not None:
                logp = self._fuse_lm(logp, tokens, lm, min(v, self.cfg.ctc_candidates or int(1.5 * k) + 1))
            # a finished hypothesis may only "emit" <eos> again, at no cost
            logp = torch.where(ended[:, None], torch.full_like(logp, NEG), logp)
            logp[:, EOS_ID] = torch.where(ended, torch.zeros_like(logp[:, EOS_ID]), logp[:, EOS_ID])
            total = (scores.view(n, 1) + logp).view(b, k * v)
            scores, flat = total.topk(k, dim=-1)  # (B, K)
            src = (flat // v + torch.arange(b, device=dev)[:, None] * k).view(n)
            tok = (flat % v).view(n)
            tokens = torch.cat([tokens[src], tok[:, None]], dim=1)
            state = state.select(src)
            if use_ctc:
                ctc_state = ctc.select(ctc_next, src, (flat % v).view(n), cand[src])
            was_ended = ended[src]
            lengths = lengths[src] + (~was_ended).float()
            ended = was_ended | (tok == EOS_ID)
        final = scores.view(n) / lengths.clamp(min=1) if self.cfg.length_norm else scores.view(n)
        order = final.view(b, k).argsort(dim=-1, descending=True, stable=True)
        order = order + torch.arange(b, device=dev)[:, None] * k
        rows, flat_scores = tokens[:, 1:].tolist(), scores.view(n).tolist()
        out = []
        for item in order.tolist():
            nbest = []
            for i in item:
                seq = [x for x in rows[i] if x != EOS_ID]
                nbest.append(Hypothesis(seq, [-1] * len(seq), flat_scores[i]))
            out.append(nbest)
        return out

    @staticmethod
    def _fuse_lm(logp: Tensor, tokens: Tensor, lm: LmFusion, num_cand: int) -> Tensor:
        """(N, V) step log-probs -> the top ``num_cand`` per row plus the LM terms, NEG elsewhere."""
        top, cand = logp.topk(num_cand, dim=-1)
        prefixes = tokens[:, 1:].tolist()  # without <bos>
        extra = [[lm.weight * lm.scorer.score(prefix, c) + (lm.length_bonus if c != EOS_ID else 0.0) for c in row]
                 for prefix, row in zip(prefixes, cand.tolist())]
        fused = torch.full_like(logp, NEG)
        fused.scatter_(1, cand, top + torch.tensor(extra, dtype=logp.dtype, device=logp.device))
        return fused

    @torch.no_grad()
    def token_spans(self, waves: Tensor, wave_lens: Tensor, hyps: list[Hypothesis]) -> list[list[TokenSpan]]:
        """Frames of every hypothesis token by forced alignment with the encoder's CTC head."""
        return self.ctc.spans_of(self.ctc(waves, wave_lens), hyps)


class CtcPrefixScorer:
    """CTC prefix scores of candidate extensions, vectorised over hypotheses and candidates (loop over time).

    For a prefix g, r_n[t] / r_b[t] are the log-probs of all alignments of frames 0..t that output g and end in a
    non-blank / blank. Extending g by c: phi[t] = r_b[t] + (r_n[t] if c != last(g)), psi(g+c) =
    logsumexp_t(phi[t-1] + x_t(c)); psi(g + <eos>) = logaddexp(r_n[T-1], r_b[T-1]). The score of an extension is
    psi(g+c) - psi(g), so the increments sum to the prefix's CTC log-prob.
    """

    def __init__(self, log_probs: Tensor, lens: Tensor):
        self.x = log_probs.float()  # (N, T, V)
        self.lens = lens
        self.t = log_probs.shape[1]
        self.frame_valid = valid_mask(lens, self.t)  # (N, T)

    def initial_state(self) -> tuple[Tensor, Tensor, Tensor]:
        """(r_n, r_b, psi) for the empty prefix: r_n (N, T) = -inf, r_b = cumulative blank, psi = 0."""
        blank = self.x[:, :, BLANK].masked_fill(~self.frame_valid, 0.0)
        r_b = blank.cumsum(1)
        return torch.full_like(r_b, NEG), r_b, torch.zeros(self.x.shape[0], device=self.x.device)

    def score(self, prefixes: Tensor, cand: Tensor, state: tuple[Tensor, Tensor, Tensor]):
        """prefixes (N, l) with <bos> first; cand (N, C) -> score increments (N, C) and the candidates' states."""
        r_n, r_b, psi = state
        n, c = cand.shape
        x_c = self.x.gather(2, cand[:, None, :].expand(-1, self.t, -1))  # (N, T, C)
        x_blank = self.x[:, :, BLANK][..., None]
        last = prefixes[:, -1]
        same = (cand == last[:, None])  # (N, C)
        phi = torch.logaddexp(r_b[..., None], torch.where(same[:, None], torch.full_like(x_c, NEG), r_n[..., None]))
        new_n = torch.full_like(x_c, NEG)
        new_b = torch.full_like(x_c, NEG)
        empty = prefixes.shape[1] == 1
        new_n[:, 0] = x_c[:, 0] if empty else NEG
        for t in range(1, self.t):
            new_n[:, t] = torch.logaddexp(new_n[:, t - 1], phi[:, t - 1]) + x_c[:, t]
            new_b[:, t] = torch.logaddexp(new_n[:, t - 1], new_b[:, t - 1]) + x_blank[:, t]
        start = torch.cat([x_c[:, :1] if empty else torch.full_like(x_c[:, :1], NEG),
                           phi[:, :-1] + x_c[:, 1:]], dim=1)  # (N, T, C) ways to emit c first at t
        start = start.masked_fill(~self.frame_valid[..., None], NEG)
        new_psi = torch.logsumexp(start, dim=1)
        last_t = (self.lens - 1).clamp(min=0)
        idx = torch.arange(n, device=cand.device)
        eos_psi = torch.logaddexp(r_n[idx, last_t], r_b[idx, last_t])
        new_psi = torch.where(cand == EOS_ID, eos_psi[:, None], new_psi)
        # ends inside the padding are carried from the last valid frame
        return new_psi - psi[:, None], (new_n, new_b, new_psi)

    def select(self, cand_state, src: Tensor, token: Tensor, cand_src: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """State of the kept hypotheses: row src, candidate column where cand_src == token."""
        new_n, new_b, new_psi = cand_state
        col = (cand_src == token[:, None]).float().argmax(1)
        return new_n[src, :, col], new_b[src, :, col], new_psi[src, col]

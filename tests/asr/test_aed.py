"""AED baseline: KV-cached steps equal the uncached pass, beam 1 equals greedy, batched equals one-by-one, CTC prefix
scores sum to the CTC log-likelihood, and training learns a toy batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechseq.asr.aed import CtcPrefixScorer
from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.model import AsrModelConfig, build_asr_model
from speechseq.layers.decoder import DecoderConfig
from speechseq.text.tokenizer import BOS_ID, EOS_ID

VOCAB = 24


def tiny_aed(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = AsrModelConfig(kind="aed", encoder=ConformerConfig(d_model=48, num_layers=2, num_heads=4, conv_kernel=7,
                                                             dropout=0.0))
    cfg.frontend.specaug_enabled = False
    cfg.aed.decoder = DecoderConfig(num_layers=2, num_heads=4, ffn_dim=96, dropout=0.0)
    for key, value in overrides.items():
        setattr(cfg.aed, key, value)
    return build_asr_model(cfg, VOCAB).eval()


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([16000, 9000, 12500])
    t = torch.arange(16000) / 16000
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (300.0, 900.0, 2000.0)])  # distinct inputs
    waves = (tones + 0.1 * torch.randn(3, 16000, generator=g)) * (torch.arange(16000)[None] < lens[:, None])
    return waves, lens


def test_kv_cached_steps_equal_the_full_causal_pass():
    model = tiny_aed()
    waves, lens = batch()
    with torch.no_grad():
        enc = model.ctc(waves, lens)
        inp = torch.cat([torch.full((3, 1), BOS_ID), torch.randint(4, VOCAB, (3, 7))], dim=1)
        full = model.decode_full(inp, enc.hidden, enc.lens).log_softmax(-1)
        state = model.init_state(enc.hidden, enc.lens)
        for t in range(inp.shape[1]):
            logp, state = model.step(inp[:, t], state)
            torch.testing.assert_close(logp, full[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decode_ctc_weight", [0.0, 0.3])
def test_beam_one_equals_greedy(decode_ctc_weight):
    model = tiny_aed(decode_ctc_weight=decode_ctc_weight)
    waves, lens = batch()
    greedy = model.recognize(waves, lens, "greedy", max_len=12)
    beam = model.recognize(waves, lens, "beam", beam_size=1, max_len=12)
    if decode_ctc_weight == 0:
        assert [h.tokens for h in beam] == [h.tokens for h in greedy]
        assert [h.score for h in beam] == pytest.approx([h.score for h in greedy], abs=1e-4)
    assert all(len(h.tokens) <= 12 for h in beam)


@pytest.mark.parametrize("method,beam_size", [("greedy", 1), ("beam", 4)])
def test_batched_decoding_equals_one_by_one(method, beam_size):
    model = tiny_aed()
    waves, lens = batch()
    together = model.recognize(waves, lens, method, beam_size=beam_size, max_len=10, min_len=3)
    for i in range(3):
        n = int(lens[i])
        alone = model.recognize(waves[i : i + 1, :n], lens[i : i + 1], method, beam_size=beam_size, max_len=10,
                                min_len=3)[0]
        assert alone.tokens == together[i].tokens
        assert alone.score == pytest.approx(together[i].score, abs=1e-3)
        assert 3 <= len(alone.tokens) <= 10


@pytest.mark.parametrize("method,beam_size,ctc_weight", [("greedy", 1, 0.0), ("beam", 4, 0.0), ("beam", 4, 0.3)])
def test_default_token_budget_is_per_utterance(method, beam_size, ctc_weight):
    # without max_len every utterance may decode max_len_ratio x its own encoder frames: a hypothesis that never
    # ends (an untrained decoder here, a repetition loop in a trained one) must stop at the same length alone and
    # in a batch with longer utterances
    model = tiny_aed(max_len_ratio=0.25, decode_ctc_weight=ctc_weight)
    waves, lens = batch()
    budgets = (model.ctc(waves, lens).lens.double() * 0.25).ceil().long().tolist()
    assert len(set(budgets)) == 3
    together = model.recognize(waves, lens, method, beam_size=beam_size, min_len=2)
    for i in range(3):
        n = int(lens[i])
        alone = model.recognize(waves[i : i + 1, :n], lens[i : i + 1], method, beam_size=beam_size, min_len=2)[0]
        assert alone.tokens == together[i].tokens
        assert alone.score == pytest.approx(together[i].score, abs=1e-3)
        assert 2 <= len(alone.tokens) <= budgets[i]
    assert any(len(h.tokens) == budget for h, budget in zip(together, budgets))


def test_wider_beam_finds_a_score_at_least_as_good():
    model = tiny_aed(length_norm=False)
    waves, lens = batch()
    narrow = model.recognize(waves, lens, "beam", beam_size=1, max_len=8)
    wide = model.recognize(waves, lens, "beam", beam_size=6, max_len=8)
    for n, w in zip(narrow, wide):
        assert w.score >= n.score - 1e-4


def test_beam_nbest_is_ranked_and_scores_are_the_decoders_sequence_log_probs():
    model = tiny_aed()
    waves, lens = batch()
    with torch.no_grad():
        enc = model.ctc(waves, lens)
    max_lens = torch.full((3,), 8)
    nbests = model.beam_nbest(enc.hidden, enc.lens, 5, 0, max_lens)
    best = model.beam_search(enc.hidden, enc.lens, 5, 0, max_lens)
    for i, nbest in enumerate(nbests):
        assert len(nbest) == 5 and nbest[0].tokens == best[i].tokens
        ranked = [h.score / (len(h.tokens) + 1) for h in nbest]  # length_norm counts the <eos> step
        assert ranked == sorted(ranked, reverse=True)
        assert len({tuple(h.tokens) for h in nbest}) == 5  # distinct hypotheses
        # each score is the teacher-forced log-prob of its tokens and <eos> (no CTC or LM term here)
        teacher = model.sequence_log_probs(enc.hidden[i, : int(enc.lens[i])], [h.tokens for h in nbest])
        assert [h.score for h in nbest] == pytest.approx(teacher.tolist(), abs=1e-3)


def test_ctc_prefix_scores_sum_to_the_ctc_log_likelihood():
    g = torch.Generator().manual_seed(3)
    log_probs = torch.randn(2, 15, 8, generator=g).log_softmax(-1)
    lens = torch.tensor([15, 11])
    target = [5, 6, 6, 4]  # with a repeat
    scorer = CtcPrefixScorer(log_probs, lens)
    state = scorer.initial_state()
    prefix = torch.full((2, 1), BOS_ID)
    total = torch.zeros(2)
    for tok in target + [EOS_ID]:
        cand = torch.tensor([[tok, 7]] * 2)
        inc, nxt = scorer.score(prefix, cand, state)
        total += inc[:, 0]
        state = scorer.select(nxt, torch.arange(2), torch.tensor([tok, tok]), cand)
        prefix = torch.cat([prefix, torch.tensor([[tok]] * 2)], 1)
    expected = -F.ctc_loss(log_probs.transpose(0, 1), torch.tensor([target] * 2), lens, torch.tensor([4, 4]),
                           blank=0, reduction="none")
    torch.testing.assert_close(total, expected, atol=1e-4, rtol=1e-4)


def test_aed_learns_a_toy_batch():
    model = tiny_aed(label_smoothing=0.0).train()
    waves, lens = batch()
    tokens = torch.tensor([[5, 9, 7, 11], [6, 6, 8, 0], [12, 4, 0, 0]])
    token_lens = torch.tensor([4, 3, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        out = model(waves, lens, tokens, token_lens)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    expected = [[5, 9, 7, 11], [6, 6, 8], [12, 4]]
    assert [h.tokens for h in model.recognize(waves, lens, "greedy")] == expected
    assert [h.tokens for h in model.recognize(waves, lens, "beam", beam_size=4)] == expected
    spans = model.token_spans(waves, lens, model.recognize(waves, lens, "greedy"))
    assert [len(s) for s in spans] == [4, 3, 2]


class FavouriteTokenLm:
    """Stub scorer: token 7 costs nothing, <eos> costs nothing after two tokens, anything else -30."""

    def score(self, prefix, token):
        return 0.0 if token == 7 or (token == EOS_ID and len(prefix) >= 2) else -30.0


def test_lm_fusion_in_beam_search():
    from speechseq.text.ngram import LmFusion

    model = tiny_aed(ctc_candidates=VOCAB)
    waves, lens = batch()
    plain = model.recognize(waves, lens, "beam", beam_size=3, max_len=8)
    silent = LmFusion(FavouriteTokenLm(), weight=0.0, length_bonus=0.0)
    assert [h.tokens for h in model.recognize(waves, lens, "beam", beam_size=3, max_len=8, lm=silent)] == \
        [h.tokens for h in plain]
    strong = LmFusion(FavouriteTokenLm(), weight=1.0, length_bonus=0.0)
    fused = model.recognize(waves, lens, "beam", beam_size=3, max_len=8, lm=strong)
    assert all(h.tokens and set(h.tokens) == {7} and len(h.tokens) >= 2 for h in fused), [h.tokens for h in fused]
    assert [h.tokens for h in plain] != [h.tokens for h in fused]
    alone = [model.recognize(waves[i:i + 1, : int(lens[i])], lens[i:i + 1], "beam", beam_size=3, max_len=8,
                             lm=strong)[0].tokens for i in range(3)]
    assert alone == [h.tokens for h in fused]
    with pytest.raises(ValueError, match="LM fusion needs method 'beam'"):
        model.recognize(waves, lens, "greedy", lm=strong)


class EosCostLm:
    """Stub scorer: every token is free, <eos> costs 5."""

    def score(self, prefix, token):
        return -5.0 if token == EOS_ID else 0.0


@pytest.mark.parametrize("method,beam_size,with_lm", [("greedy", 1, False), ("beam", 4, False), ("beam", 4, True)])
def test_a_hypothesis_cut_by_max_len_pays_for_its_eos(method, beam_size, with_lm):
    # min_len = max_len = 3: every hypothesis is cut after 3 tokens; its score must be the teacher-forced log-prob of
    # those tokens followed by <eos> (plus the LM's <eos> cost and length bonuses), not the 3 tokens alone
    from speechseq.text.ngram import LmFusion

    model = tiny_aed()
    waves, lens = batch()
    lm = LmFusion(EosCostLm(), weight=1.0, length_bonus=0.5) if with_lm else None
    hyps = model.recognize(waves, lens, method, beam_size=beam_size, min_len=3, max_len=3, lm=lm)
    with torch.no_grad():
        enc = model.ctc(waves, lens)
        toks = torch.tensor([h.tokens for h in hyps])
        assert toks.shape == (3, 3)
        inp = torch.cat([torch.full((3, 1), BOS_ID), toks], dim=1)
        logp = model.decode_full(inp, enc.hidden, enc.lens).float().log_softmax(-1)
        target = torch.cat([toks, torch.full((3, 1), EOS_ID)], dim=1)
        expected = logp.gather(2, target[..., None]).squeeze(2).sum(1)
    if with_lm:
        expected = expected + 3 * 0.5 - 5.0
    assert [h.score for h in hyps] == pytest.approx(expected.tolist(), abs=1e-3)

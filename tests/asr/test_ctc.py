import itertools
import math

import pytest
import torch

from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.ctc import CtcConfig, CtcModel, forced_align, greedy_decode, prefix_beam_search, word_times
from speechseq.asr.frontend import FrontendConfig
from speechseq.audio.transforms import FbankConfig


def probs_to_lp(rows):
    return torch.tensor(rows, dtype=torch.float32).log()


def test_greedy_merges_repeats_and_drops_blanks():
    # frames: a a _ a b b _  -> "a a b"
    V = 3
    ids = [1, 1, 0, 1, 2, 2, 0]
    lp = torch.full((1, len(ids), V), -5.0)
    for t, i in enumerate(ids):
        lp[0, t, i] = -0.01
    hyp = greedy_decode(lp, torch.tensor([7]))[0]
    assert hyp.tokens == [1, 1, 2] and hyp.frames == [0, 3, 4]
    assert greedy_decode(lp, torch.tensor([2]))[0].tokens == [1]  # length respected


def brute_force_prefix_probs(p):
    """Exact P(prefix) by enumerating every alignment of a (T, V) probability matrix."""
    T, V = p.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        prob = math.prod(float(p[t, s]) for t, s in enumerate(path))
        out, prev = [], None
        for s in path:
            if s != 0 and s != prev:
                out.append(s)
            prev = s
        totals[tuple(out)] = totals.get(tuple(out), 0.0) + prob
    return totals


def test_prefix_beam_scores_equal_exhaustive_sums():
    torch.manual_seed(3)
    p = torch.softmax(torch.randn(4, 3) * 1.5, dim=-1)
    exact = brute_force_prefix_probs(p)
    nbest = prefix_beam_search(p.log()[None], torch.tensor([4]), beam_size=50, blank_skip=1.0)[0]
    assert len(nbest) == len(exact)
    for hyp in nbest:
        assert math.exp(hyp.score) == pytest.approx(exact[tuple(hyp.tokens)], rel=1e-4)
    best = max(exact, key=exact.get)
    assert tuple(nbest[0].tokens) == best


def test_prefix_beam_beats_greedy_on_constructed_case():
    # each frame: blank 0.6, 'a' 0.4. Greedy picks blank,blank -> "" (0.36); P("a") = 0.64.
    lp = probs_to_lp([[0.6, 0.4, 0.0 + 1e-9], [0.6, 0.4, 1e-9]])[None]
    assert greedy_decode(lp, torch.tensor([2]))[0].tokens == []
    best = prefix_beam_search(lp, torch.tensor([2]), beam_size=4)[0][0]
    assert best.tokens == [1] and math.exp(best.score) == pytest.approx(0.64, rel=1e-4)


def test_forced_align_spans_and_word_times():
    # 12 frames, tokens [1, 2, 2, 3]: emissions peak at frames 2, 5, 7 (repeat needs a blank between), 9-10
    T, V = 12, 4
    peaks = {2: 1, 5: 2, 7: 2, 9: 3, 10: 3}
    lp = torch.full((T, V), math.log(0.02))
    for t in range(T):
        tok = peaks.get(t, 0)
        lp[t, tok] = math.log(0.94)
    spans = forced_align(lp, [1, 2, 2, 3])
    assert [(s.token, s.start, s.end) for s in spans] == [(1, 2, 3), (2, 5, 6), (2, 7, 8), (3, 9, 11)]
    words = word_times(spans, ["\u2581he", "\u2581bo", "o", "k"], frame_shift_s=0.04)
    assert [w.word for w in words] == ["he", "book"]
    assert words[0].start_s == pytest.approx(0.08) and words[1].start_s == pytest.approx(0.20)
    assert words[1].end_s == pytest.approx(0.44)
    with pytest.raises(ValueError, match="cannot align"):
        forced_align(lp[:3], [1, 2, 2, 3])


def tiny_model(self_condition=False):
    torch.manual_seed(0)
    fe = FrontendConfig(fbank=FbankConfig(n_mels=24), specaug_enabled=False)
    enc = ConformerConfig(num_features=24, d_model=32, num_layers=2, num_heads=4, conv_kernel=5, dropout=0.0,
                          attention_dropout=0.0)
    return CtcModel(fe, enc, CtcConfig(inter_layers=(1,), inter_weight=0.3, self_condition=self_condition), 8)


def test_ctc_loss_decreases_on_toy_set():
    model = tiny_model(self_condition=True)
    g = torch.Generator().manual_seed(1)
    waves = torch.randn(4, 8000, generator=g) * 0.1
    lens = torch.tensor([8000, 7000, 6000, 5000])
    tokens = torch.tensor([[4, 5, 6], [5, 6, 0], [7, 4, 0], [6, 0, 0]])
    tlens = torch.tensor([3, 2, 2, 1])
    model.frontend.set_stats(*model.frontend.raw_features(waves, lens))
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    model.train()
    losses = []
    for _ in range(60):
        out = model(waves, lens, tokens, tlens)
        assert "inter_ctc" in out.metrics
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    hyps = model.recognize(waves, lens, "greedy")
    assert [h.tokens for h in hyps] == [[4, 5, 6], [5, 6], [7, 4], [6]]
    beam = model.recognize(waves, lens, "beam", beam_size=4)
    assert [h.tokens for h in beam] == [h.tokens for h in hyps]


def test_batched_decode_equals_single():
    model = tiny_model().eval()
    waves = torch.randn(3, 6000) * 0.1
    lens = torch.tensor([6000, 4500, 3000])
    batch = model(waves, lens)
    for b in range(3):
        alone = model(waves[b:b + 1, : lens[b]], lens[b:b + 1])
        n = int(batch.lens[b])
        assert alone.lens.item() == n
        assert torch.allclose(alone.log_probs[0], batch.log_probs[b, :n], atol=1e-4)


def test_unknown_decode_method():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="unknown CTC decoding method 'viterbi'"):
        model.recognize(torch.zeros(1, 4000), torch.tensor([4000]), "viterbi")

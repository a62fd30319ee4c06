import itertools
import math

import pytest
import torch

from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.ctc import (CtcConfig, CtcModel, Hypothesis, ctc_loss, ctc_loss_unnormalized, forced_align, greedy_decode,
                               prefix_beam_search, word_times)
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


def tiny_model(self_condition=False, prior_weight=0.0):
    torch.manual_seed(0)
    fe = FrontendConfig(fbank=FbankConfig(n_mels=24), specaug_enabled=False)
    enc = ConformerConfig(num_features=24, d_model=32, num_layers=2, num_heads=4, conv_kernel=5, dropout=0.0,
                          attention_dropout=0.0)
    ctc = CtcConfig(inter_layers=(1,), inter_weight=0.3, self_condition=self_condition, prior_weight=prior_weight,
                    prior_momentum=0.9)
    return CtcModel(fe, enc, ctc, 8)


def toy_batch():
    """Four noise 'utterances' with fixed targets: (waves, lens, tokens, token_lens)."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(4, 8000, generator=g) * 0.1, torch.tensor([8000, 7000, 6000, 5000]),
            torch.tensor([[4, 5, 6], [5, 6, 0], [7, 4, 0], [6, 0, 0]]), torch.tensor([3, 2, 2, 1]))


def train_on_toy_batch(model, steps=60):
    """Adam on :func:`toy_batch` for ``steps`` steps; returns the losses and leaves the model in eval mode."""
    waves, lens, tokens, tlens = toy_batch()
    model.frontend.set_stats(*model.frontend.raw_features(waves, lens))
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    model.train()
    losses = []
    for _ in range(steps):
        out = model(waves, lens, tokens, tlens)
        assert "inter_ctc" in out.metrics
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    model.eval()
    return losses


def test_ctc_loss_decreases_on_toy_set():
    model = tiny_model(self_condition=True)
    losses = train_on_toy_batch(model)
    assert losses[-1] < 0.3 * losses[0]
    waves, lens, _, _ = toy_batch()
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


def test_headless_pass_gives_the_same_hidden_states_and_refuses_training():
    model = tiny_model().eval()
    waves, lens, tokens, tlens = toy_batch()
    full, headless = model(waves, lens), model(waves, lens, head=False)
    assert headless.log_probs is None and full.log_probs is not None
    assert torch.equal(headless.hidden, full.hidden) and torch.equal(headless.lens, full.lens)
    with pytest.raises(ValueError, match="head=False is for inference only"):
        model(waves, lens, tokens, tlens, head=False)


def test_unknown_decode_method():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match="unknown CTC decoding method 'viterbi'"):
        model.recognize(torch.zeros(1, 4000), torch.tensor([4000]), "viterbi")


def test_unnormalized_ctc_loss_has_exact_gradients():
    """F.ctc_loss's gradient is wrong for scores that are not log-softmax outputs; ours matches finite differences,
    its value equals F.ctc_loss's, and an infeasible item gives 0 and no gradient."""
    torch.manual_seed(0)
    scores = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    # item 1: [3, 1, 1] needs 4 frames (a blank between the repeated 1s) and has 3
    lens, tokens, tlens = torch.tensor([6, 3]), torch.tensor([[1, 2, 2], [3, 1, 1]]), torch.tensor([3, 3])
    loss = ctc_loss_unnormalized(scores, lens, tokens, tlens)
    direct = torch.nn.functional.ctc_loss(scores[:1].transpose(0, 1), tokens[:1], lens[:1], tlens[:1], reduction="sum")
    assert torch.allclose(loss, direct / 2)
    grad, = torch.autograd.grad(loss, scores)
    assert torch.all(grad[1] == 0)
    eps, numeric = 1e-6, torch.zeros_like(scores)
    with torch.no_grad():
        for idx in itertools.product(range(2), range(6), range(4)):
            d = torch.zeros_like(scores)
            d[idx] = eps
            numeric[idx] = (ctc_loss_unnormalized(scores + d, lens, tokens, tlens)
                            - ctc_loss_unnormalized(scores - d, lens, tokens, tlens)) / (2 * eps)
    assert torch.allclose(grad, numeric, atol=1e-6)
    wrong, = torch.autograd.grad(ctc_loss(scores, lens, tokens, tlens), scores)
    assert not torch.allclose(wrong, numeric, atol=1e-2)


def test_label_prior_training_tracks_prior_and_widens_token_spans():
    """The prior is a running mean of the posteriors, it is saved with the weights, and after the
    same toy training a label-prior model's Viterbi alignment gives the tokens more frames than plain CTC's."""
    waves, lens, tokens, tlens = toy_batch()
    token_frames = {}
    for weight in (0.0, 0.7):
        model = tiny_model(prior_weight=weight)
        assert ("log_prior" in model.state_dict()) == (weight > 0)  # plain models keep their old layout
        losses = train_on_toy_batch(model)
        assert losses[-1] < 0.3 * losses[0]
        if weight > 0:
            assert torch.isclose(model.log_prior.exp().sum(), torch.tensor(1.0), atol=1e-3)
            out = model(waves, lens)
            assert torch.allclose(model.alignment_scores(out.log_probs), out.log_probs - 0.7 * model.log_prior)
            # the update: m * prior + (1 - m) * mean posterior over the valid frames only
            lp = torch.tensor([[[0.5, 0.5, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1.0]]]).clamp(min=1e-12).log()
            model.log_prior.fill_(math.log(1 / 8))
            model._update_prior(lp, torch.tensor([1]))
            expected = 0.9 / 8 + 0.1 * torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0])
            assert torch.allclose(model.log_prior.exp(), expected, atol=1e-6)
        refs = [Hypothesis(t[:n].tolist(), [], 0.0) for t, n in zip(tokens, tlens)]
        spans = model.token_spans(waves, lens, refs)
        assert [[s.token for s in sp] for sp in spans] == [r.tokens for r in refs]
        token_frames[weight] = sum(s.end - s.start for sp in spans for s in sp)
    assert token_frames[0.7] > token_frames[0.0]


def test_weights_move_between_label_prior_and_plain_models():
    """--init from a plain model into a label-prior one (the prior starts uniform) and back (the prior is dropped)."""
    plain, prior = tiny_model(), tiny_model(prior_weight=0.5)
    prior.log_prior.normal_()
    prior.load_state_dict(plain.state_dict())
    assert torch.allclose(prior.log_prior, torch.full((8,), -math.log(8)))
    assert torch.equal(prior.head.weight, plain.head.weight)
    prior.log_prior.normal_()
    plain.load_state_dict(prior.state_dict())
    assert "log_prior" not in plain.state_dict()

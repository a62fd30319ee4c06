"""Paraformer: CIF integrate-and-fire, tail handling, glancing sampler, MWER loss, and learning a toy batch."""

from __future__ import annotations

import itertools

import pytest
import torch

from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.model import AsrModelConfig, build_asr_model
from speechseq.asr.paraformer import (
    append_tail,
    candidate_errors,
    cif,
    glance,
    mwer_candidates,
    mwer_loss,
    num_fired,
)
from speechseq.layers.decoder import DecoderConfig


def reference_cif(hidden: torch.Tensor, alphas: torch.Tensor, threshold: float = 1.0) -> list[torch.Tensor]:
    """Frame-by-frame integrate-and-fire (the loop of the Paraformer paper), one utterance at a time."""
    out = []
    for h, a in zip(hidden, alphas):
        acc, frame, fired = 0.0, torch.zeros(h.shape[1]), []
        for t in range(h.shape[0]):
            alpha = float(a[t])
            if acc + alpha >= threshold:
                part = threshold - acc
                fired.append(frame + part * h[t])
                rest = alpha - part
                frame, acc = rest * h[t], rest
                while acc >= threshold:  # a weight above the threshold fires more than once
                    fired.append(threshold * h[t])
                    frame, acc = (acc - threshold) * h[t], acc - threshold
            else:
                frame, acc = frame + alpha * h[t], acc + alpha
        out.append(torch.stack(fired) if fired else torch.zeros(0, h.shape[1]))
    return out


def test_vectorised_cif_equals_reference_loop():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 37, 8, generator=g)
    alphas = torch.rand(4, 37, generator=g) * 0.7
    alphas[1, 20:] = 0.0  # a shorter (padded) utterance
    alphas[2, 5] = 1.6  # one frame that fires twice
    emb, fired = cif(hidden, alphas)
    ref = reference_cif(hidden, alphas)
    for b in range(4):
        assert int(fired[b]) == ref[b].shape[0]
        torch.testing.assert_close(emb[b, : int(fired[b])], ref[b], atol=1e-5, rtol=1e-5)
        assert emb[b, int(fired[b]):].abs().sum() == 0


def test_training_scaling_fires_exactly_the_target_length():
    g = torch.Generator().manual_seed(1)
    alphas = torch.rand(6, 50, generator=g)
    lens = torch.tensor([50, 41, 33, 20, 12, 7])
    alphas = alphas * (torch.arange(50)[None] < lens[:, None])
    targets = torch.tensor([3, 17, 9, 20, 1, 5])
    scaled = alphas * (targets / alphas.sum(1))[:, None]
    emb, fired = cif(torch.ones(6, 50, 4), scaled)
    assert fired.tolist() == targets.tolist()
    # every fired token integrates exactly one unit of weight
    for b, n in enumerate(targets.tolist()):
        torch.testing.assert_close(emb[b, :n], torch.ones(n, 4), atol=1e-4, rtol=0)


def test_tail_fires_a_trailing_token_with_enough_weight():
    hidden = torch.randn(2, 10, 3)
    alphas = torch.zeros(2, 10)
    alphas[0, :6] = 2.6 / 6  # 0.6 left over: fires with the 0.45 tail
    alphas[1, :6] = 2.5 / 6  # 0.5 left over: 0.95 < 1, dropped
    lens = torch.tensor([8, 6])
    assert num_fired(alphas).tolist() == [2, 2]
    with_tail, hidden_ext = append_tail(alphas, hidden, lens, 0.45)
    assert hidden_ext.shape == (2, 11, 3) and hidden_ext[:, 10].abs().sum() == 0
    assert with_tail[0, 8] == 0.45 and with_tail[1, 6] == 0.45
    assert num_fired(with_tail).tolist() == [3, 2]
    # no frames -> no tail, nothing fires
    empty, _ = append_tail(torch.zeros(1, 4), torch.zeros(1, 4, 3), torch.tensor([0]), 0.45)
    assert num_fired(empty).tolist() == [0]


def test_glancing_sampler_replaces_floor_of_ratio_times_hamming_positions():
    g = torch.Generator().manual_seed(2)
    b, n, d = 5, 12, 6
    target = torch.randint(4, 30, (b, n), generator=g)
    lens = torch.tensor([12, 10, 7, 3, 12])
    valid = torch.arange(n)[None] < lens[:, None]
    wrong_counts = [5, 10, 0, 3, 12]
    pred = target.clone()
    for i, w in enumerate(wrong_counts):
        pred[i, :w] = target[i, :w] + 1
    embeds, target_embeds = torch.zeros(b, n, d), torch.ones(b, n, d)
    for ratio in (0.75, 0.4, 1.0):
        mixed = glance(embeds, target_embeds, pred, target, valid, ratio)
        replaced = mixed[..., 0] == 1
        assert not (replaced & ~valid).any(), "padding positions are never replaced"
        expected = [int(w * ratio) for w in wrong_counts]
        assert replaced.sum(1).tolist() == expected


def test_mwer_loss_sign_and_gradient():
    logp = torch.tensor([[-1.0, -1.0, -3.0]], requires_grad=True)
    err = torch.tensor([[0.0, 2.0, 4.0]])  # candidate 0 is the best
    loss = mwer_loss(logp, err)
    loss.backward()
    probs = torch.softmax(logp.detach(), -1)
    assert torch.isclose(loss, (probs * (err - 2.0)).sum())
    assert logp.grad[0, 0] < 0, "raising the best candidate's probability lowers the loss"
    assert logp.grad[0, 2] > 0 and logp.grad[0, 1] > 0
    assert torch.isclose(logp.grad.sum(), torch.tensor(0.0), atol=1e-6)  # renormalised over the candidates
    # the loss is lower when the probability mass sits on the better candidate
    assert mwer_loss(torch.tensor([[0.0, -5.0, -5.0]]), err) < 0 < mwer_loss(torch.tensor([[-5.0, -5.0, 0.0]]), err)
    # equal errors give no signal
    assert mwer_loss(torch.tensor([[-1.0, -2.0]]), torch.tensor([[1.0, 1.0]])) == 0


def tiny_paraformer(**overrides) -> torch.nn.Module:
    cfg = AsrModelConfig(kind="paraformer", encoder=ConformerConfig(d_model=48, num_layers=2, num_heads=4,
                                                                    conv_kernel=7, dropout=0.0))
    cfg.frontend.specaug_enabled = False
    cfg.paraformer.decoder = DecoderConfig(num_layers=2, num_heads=4, ffn_dim=96, dropout=0.0)
    for key, value in overrides.items():
        setattr(cfg.paraformer, key, value)
    return build_asr_model(cfg, 20)


def test_paraformer_learns_a_toy_batch_and_decodes_it():
    torch.manual_seed(0)
    # no glancing: with two utterances the sampler's second pass can be learned without the first (it is
    # covered above); this checks CIF + parallel decoder + tail end to end
    model = tiny_paraformer(predictor_dropout=0.0, label_smoothing=0.0, sampling_ratio=0.0)
    waves = torch.randn(2, 16000) * 0.1
    waves[1, :8000] += torch.sin(torch.arange(8000) * 0.3)
    wave_lens = torch.tensor([16000, 12000])
    tokens = torch.tensor([[5, 9, 7, 11], [6, 6, 8, 0]])
    token_lens = torch.tensor([4, 3])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(120):
        out = model(waves, wave_lens, tokens, token_lens)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.loss.item()
    assert out.loss.item() < 0.3 * first
    model.eval()
    hyps = model.recognize(waves, wave_lens)
    assert [h.tokens for h in hyps] == [[5, 9, 7, 11], [6, 6, 8]]
    spans = model.token_spans(waves, wave_lens, hyps)
    for h, s in zip(hyps, spans):
        assert len(s) == len(h.tokens)
        assert all(0 <= a.start < a.end for a in s)
        assert [a.start for a in s] == sorted(a.start for a in s)


def test_glancing_training_lowers_the_loss():
    torch.manual_seed(0)
    model = tiny_paraformer(sampling_ratio=0.75)
    waves, wave_lens = torch.randn(2, 12000) * 0.1, torch.tensor([12000, 9000])
    tokens, token_lens = torch.tensor([[5, 9, 7], [6, 8, 0]]), torch.tensor([3, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model(waves, wave_lens, tokens, token_lens)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


@pytest.mark.parametrize("sampling", ["swap", "posterior"])
def test_mwer_stage_trains_and_reports_the_loss(sampling):
    torch.manual_seed(0)
    model = tiny_paraformer(mwer_weight=0.5, mwer_sampling=sampling)
    out = model(torch.randn(2, 8000), torch.tensor([8000, 6000]), torch.tensor([[5, 9, 7], [6, 8, 0]]),
                torch.tensor([3, 2]))
    out.loss.backward()
    assert "mwer" in out.metrics
    assert model.decoder.layers[0].ffn[0].weight.grad.abs().sum() > 0


def test_cif_predictor_runs_in_fp32_under_autocast():
    from speechseq.asr.paraformer import CifPredictor

    predictor = CifPredictor(16, dropout=0.0).eval()
    hidden = torch.randn(2, 9, 16)
    mask = torch.arange(9)[None] < torch.tensor([[9], [5]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alphas = predictor(hidden.bfloat16(), mask)
    assert alphas.dtype == torch.float32
    torch.testing.assert_close(alphas, predictor(hidden.bfloat16().float(), mask))
    assert (alphas[1, 5:] == 0).all() and ((alphas >= 0) & (alphas <= 1)).all()


class _Lm:
    """Stub n-gram scorer: a fixed log-prob table over (last token, next token), -1 after the empty prefix."""

    def __init__(self, table: torch.Tensor):
        self.table = table

    def score(self, prefix, token):
        return float(self.table[prefix[-1], token]) if prefix else -1.0


def _slot_logp(n: int, v: int, seed: int) -> torch.Tensor:
    from speechseq.text.tokenizer import BLANK_ID, BOS_ID

    logp = torch.randn(n, v, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    logp[:, BLANK_ID] = float("-inf")
    logp[:, BOS_ID] = float("-inf")
    return logp


def test_slot_beam_search_with_a_silent_lm_is_greedy():
    from speechseq.asr.paraformer import slot_beam_search
    from speechseq.text.ngram import LmFusion
    from speechseq.text.tokenizer import EOS_ID

    lm = _Lm(torch.randn(9, 9, generator=torch.Generator().manual_seed(5)))
    for seed in range(6):
        logp = _slot_logp(7, 9, seed)
        if seed % 2:
            logp[4, EOS_ID] = 5.0  # an <eos> in the middle: greedy stops there
        best, ids = logp.max(-1)
        row = ids.tolist()
        stop = row.index(EOS_ID) if EOS_ID in row else len(row)
        tokens, score = slot_beam_search(logp, 4, LmFusion(lm, weight=0.0, length_bonus=0.0))
        assert tokens == row[:stop]
        assert score == pytest.approx(float(best[:stop].sum()), abs=1e-5)


def test_slot_beam_search_finds_the_exhaustive_best_with_an_lm():
    # every token sequence over 3 slots of a 6-token vocabulary, scored by the rule the search documents
    from speechseq.asr.paraformer import slot_beam_search
    from speechseq.text.ngram import LmFusion
    from speechseq.text.tokenizer import EOS_ID

    n, v, w, bonus = 3, 6, 0.8, 0.3
    for seed in range(4):
        logp = _slot_logp(n, v, seed)
        lm = _Lm(torch.randn(v, v, generator=torch.Generator().manual_seed(10 + seed)) * 2)
        best_rank, best_tokens = float("-inf"), None
        for seq in itertools.product(range(v), repeat=n):
            rank, toks = 0.0, []
            for j, c in enumerate(seq):
                if c == EOS_ID:
                    free = sum(float(logp[i].max()) for i in range(j + 1, n))  # later slots: any token
                    rank += float(logp[j, c]) + w * lm.score(toks, c) + free
                    break
                rank += float(logp[j, c]) + w * lm.score(toks, c) + bonus
                toks.append(c)
            else:
                rank += w * lm.score(toks, EOS_ID)
            if rank > best_rank:
                best_rank, best_tokens = rank, toks
        tokens, _ = slot_beam_search(logp, v ** n, LmFusion(lm, weight=w, length_bonus=bonus))
        assert tokens == best_tokens
        silent, _ = slot_beam_search(logp, v ** n, LmFusion(lm, weight=0.0, length_bonus=0.0))
        assert seed > 0 or tokens != silent  # the LM changes the answer (checked on the first case)


def test_paraformer_greedy_and_beam_with_lm_decode_batched_like_alone():
    from speechseq.text.ngram import LmFusion

    model = tiny_paraformer().eval()
    g = torch.Generator().manual_seed(3)
    lens = torch.tensor([16000, 11000])
    waves = torch.randn(2, 16000, generator=g) * (torch.arange(16000)[None] < lens[:, None])
    lm = LmFusion(_Lm(torch.randn(40, 40, generator=g)), weight=1.0, length_bonus=0.5)
    greedy = model.recognize(waves, lens, "greedy")
    assert [h.tokens for h in model.recognize(waves, lens, "beam")] == [h.tokens for h in greedy]
    fused = model.recognize(waves, lens, "beam", beam_size=4, lm=lm)
    for i in range(2):  # the shorter utterance's CIF tail must not read the batch's padding frames
        one = (waves[i:i + 1, : int(lens[i])], lens[i:i + 1])
        alone = model.recognize(*one, "greedy")[0]
        assert alone.tokens == greedy[i].tokens and alone.score == pytest.approx(greedy[i].score, abs=1e-4)
        alone = model.recognize(*one, "beam", beam_size=4, lm=lm)[0]
        assert alone.tokens == fused[i].tokens and alone.score == pytest.approx(fused[i].score, abs=1e-4)
    with pytest.raises(ValueError, match="LM fusion needs method 'beam'"):
        model.recognize(waves, lens, "greedy", lm=lm)


def test_candidate_errors_cut_hypotheses_at_eos_and_ignore_reference_padding():
    from speechseq.layers.decoder import IGNORE, append_eos
    from speechseq.text.tokenizer import EOS_ID

    tokens = torch.tensor([[5, 6, 7], [8, 9, 0]])
    target = append_eos(tokens, torch.tensor([3, 2]))  # [[5 6 7 eos], [8 9 eos ignore]]
    cands = torch.tensor([[[5, 6, 7, EOS_ID], [5, EOS_ID, 7, 7], [5, 6, 7, 7]],
                          [[8, 9, EOS_ID, 5], [9, 9, 9, 9], [8, 9, 5, 5]]])
    lens = torch.tensor([4, 3])  # row 1: only 3 valid slots
    errs = candidate_errors(cands, lens, target, target != IGNORE)
    assert errs.tolist() == [[0, 2, 1], [0, 2, 1]]


def test_mwer_candidates_greedy_first_then_swaps_or_posterior_samples():
    torch.manual_seed(0)
    # position 0: a coin flip between tokens 1 and 3; position 1: 60/40 (0 vs 4); position 2: padding
    probs = torch.tensor([[[0, 0.5, 0, 0.5, 0], [0.6, 0, 0, 0, 0.4], [0.2, 0.2, 0.2, 0.2, 0.2]]])
    logp = probs.clamp(min=1e-12).log()
    valid = torch.tensor([[True, True, False]])
    greedy = logp.argmax(-1)[0]
    second = logp.topk(2, dim=-1).indices[0, :, 1]
    swaps = mwer_candidates(logp, 400, "swap")[0]
    assert torch.equal(swaps[0], greedy)
    assert bool(((swaps == greedy) | (swaps == second)).all())  # only ever the best or second-best token
    assert 0.4 < (swaps[1:] != greedy).float().mean() < 0.6  # each position swapped with probability 0.5
    samples = mwer_candidates(logp, 400, "posterior", valid)[0]
    assert torch.equal(samples[0], greedy)
    assert bool((samples[:, 2] == greedy[2]).all())  # padding keeps the greedy token
    assert not bool((samples[1:, :2] == greedy[:2]).all(-1).any())  # no other candidate is the greedy path
    assert set(samples[:, 0].tolist()) == {1, 3} and set(samples[:, 1].tolist()) == {0, 4}
    # draws follow the posterior, except the 30% that came out greedy and had one position swapped
    assert 0.35 < (samples[1:, 1] == 4).float().mean() < 0.65
    # a confident decoder: every other candidate is the greedy path with exactly one valid position swapped
    sure = torch.tensor([[[0, 0, 0.98, 0.02, 0], [0.97, 0, 0, 0, 0.03], [0, 1.0, 0, 0, 0]]]).clamp(min=1e-12).log()
    cands = mwer_candidates(sure, 50, "posterior", valid)[0]
    assert bool(((cands[1:, :2] != sure.argmax(-1)[0, :2]).sum(-1) >= 1).all())
    assert bool((cands[:, 2] == 1).all())
    with pytest.raises(ValueError, match="unknown MWER sampling"):
        mwer_candidates(logp, 2, "beam")


def test_factorised_nbest_equals_brute_force_ranking():
    from speechseq.asr.paraformer import factorised_nbest

    g = torch.Generator().manual_seed(3)
    for trial in range(5):
        logp = torch.randn(4, 5, generator=g).mul(2).log_softmax(-1)
        valid = torch.tensor([True, True, True, trial % 2 == 0])
        k = 7
        best = factorised_nbest(logp, valid, k)
        assert best.shape == (k, 4)
        n_valid = int(valid.sum())
        scored = []
        for seq in itertools.product(range(5), repeat=n_valid):
            full = list(seq) + ([int(logp[3].argmax())] if n_valid == 3 else [])
            scored.append((float(logp[torch.arange(4), torch.tensor(full)].sum()), tuple(full)))
        scored.sort(key=lambda e: -e[0])
        got = [float(logp[torch.arange(4), row].sum()) for row in best]
        assert got == pytest.approx([s for s, _ in scored[:k]], abs=1e-5)  # the k best scores, best first
        assert len({tuple(r.tolist()) for r in best}) == k  # all distinct
        if n_valid == 3:
            assert bool((best[:, 3] == logp[3].argmax()).all())  # an invalid position keeps its greedy token
    # fewer sequences than k: one valid position, 3 tokens -> 3 sequences, the last repeated
    few = factorised_nbest(torch.tensor([[0.0, -1.0, -2.0], [0.0, -3.0, -4.0]]), torch.tensor([True, False]), 5)
    assert few[:, 0].tolist() == [0, 1, 2, 2, 2] and few[:, 1].tolist() == [0] * 5


def test_mwer_on_inference_slots_trains_decoder_and_predictor():
    grads = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        model = tiny_paraformer(mwer_weight=weight, mwer_sampling="nbest", mwer_slots="inference",
                                predictor_dropout=0.0)
        with torch.no_grad():  # tokens 5 and 9 lead everywhere, so candidates differ in their errors
            model.out.bias[5], model.out.bias[9] = 4.0, 3.5
        torch.manual_seed(1)
        waves = torch.randn(2, 8000)
        out = model(waves, torch.tensor([8000, 6000]), torch.tensor([[5, 9, 7], [6, 8, 0]]), torch.tensor([3, 2]))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        grads[weight] = (model.decoder.layers[0].ffn[0].weight.grad.clone(), model.predictor.proj.weight.grad.clone())
    assert "mwer" in out.metrics and out.metrics["mwer"] != 0.0
    # the MWER term adds gradient to the decoder and, through the CIF embeddings, to the predictor
    assert not torch.allclose(grads[0.0][0], grads[0.5][0]) and not torch.allclose(grads[0.0][1], grads[0.5][1])
    from speechseq.asr.paraformer import ParaformerConfig
    from speechseq.errors import ConfigError

    with pytest.raises(ConfigError, match="mwer_slots"):
        ParaformerConfig(mwer_slots="oracle")

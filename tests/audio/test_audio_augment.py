"""Augmentation tests: SpecAugment masks, VTLP warping, speed perturbation, noise mixing at a target SNR."""

import numpy as np
import pytest
import torch

from speechseq.audio.functional import fbank, mix_at_snr, random_eq_curves, spec_augment, speed_perturb, vtlp_warp
from speechseq.audio.transforms import SpecAugment, SpecAugmentConfig


def _runs(mask_row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, count = [], 0
    for value in mask_row.tolist() + [False]:
        if value:
            count += 1
        elif count:
            runs.append(count)
            count = 0
    return runs


def test_spec_augment_masks_inside_lengths_and_widths():
    batch, frames, bins = 3, 237, 40
    feats = torch.rand(batch, frames, bins) + 1.0  # strictly positive: zeros are masked cells
    feat_lens = torch.tensor([237, 150, 61])
    out = spec_augment(feats, feat_lens, num_freq_masks=1, freq_mask_width=7, num_time_masks=1, time_mask_ratio=0.1,
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == feats.shape and torch.isfinite(out).all()
    assert torch.all((out == 0) | (out == feats))
    for b in range(batch):
        n = int(feat_lens[b])
        torch.testing.assert_close(out[b, n:], feats[b, n:], atol=0, rtol=0)  # padding untouched
        zero = out[b, :n] == 0
        full_cols = zero.all(dim=0)  # frequency-masked bins
        full_rows = zero.all(dim=1)  # time-masked frames
        assert sum(_runs(full_cols)) <= 7
        assert sum(_runs(full_rows)) <= int(0.1 * n)
        # every zero cell is explained by a masked bin or a masked frame
        assert torch.equal(zero, full_cols[None, :] | full_rows[:, None])
    assert not torch.equal(feats, out)


def test_spec_augment_statistics_and_determinism():
    feats = torch.rand(16, 300, 80) + 1.0
    feat_lens = torch.randint(100, 301, (16,))
    kwargs = dict(num_freq_masks=2, freq_mask_width=27, num_time_masks=10, time_mask_ratio=0.05)
    a = spec_augment(feats, feat_lens, generator=torch.Generator().manual_seed(7), **kwargs)
    b = spec_augment(feats, feat_lens, generator=torch.Generator().manual_seed(7), **kwargs)
    c = spec_augment(feats, feat_lens, generator=torch.Generator().manual_seed(8), **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    for item in range(16):
        n = int(feat_lens[item])
        zero = a[item, :n] == 0
        assert zero.all(dim=0).sum() <= 2 * 27
        assert zero.all(dim=1).sum() <= 10 * int(0.05 * n)
    masked_fraction = (a == 0).float().mean()
    assert 0.05 < masked_fraction < 0.6  # masks do happen, but most of the signal survives


def test_spec_augment_module_train_eval():
    feats, feat_lens = torch.rand(2, 50, 20) + 1.0, torch.tensor([50, 30])
    module = SpecAugment(SpecAugmentConfig(freq_mask_width=5, num_time_masks=2, time_mask_ratio=0.2))
    module.eval()
    assert module(feats, feat_lens) is feats
    module.train()
    out = module(feats, feat_lens, generator=torch.Generator().manual_seed(1))
    assert (out == 0).any() and torch.equal(out[1, 30:], feats[1, 30:])


def _peak_hz(wave: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wave.double() * torch.hann_window(len(wave), dtype=torch.float64)).abs()
    return float(spectrum.argmax()) * sample_rate / len(wave)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_length_and_pitch(factor):
    sample_rate, num_samples = 16000, 16000
    wave = 0.5 * torch.sin(2 * torch.pi * 440.0 * torch.arange(num_samples) / sample_rate)
    out = speed_perturb(wave, sample_rate, factor)
    assert out.dtype == wave.dtype and out.dim() == 1 and torch.isfinite(out).all()
    assert abs(len(out) - num_samples / factor) <= 1
    assert abs(_peak_hz(out, sample_rate) - 440.0 * factor) < 3.0
    batched = speed_perturb(torch.stack([wave, 0.5 * wave]), sample_rate, factor)
    assert batched.shape == (2, len(out))
    torch.testing.assert_close(batched[0], out)
    assert torch.equal(speed_perturb(wave, sample_rate, 1.0), wave)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_mix_at_snr_hits_target(snr_db):
    generator = torch.Generator().manual_seed(0)
    wave = torch.randn(3, 4000, generator=generator) * torch.tensor([[0.1], [0.5], [0.01]])
    noise = torch.randn(1501, generator=generator) * 0.3  # shorter than the wave: tiled
    mixed = mix_at_snr(wave, noise, snr_db, generator=torch.Generator().manual_seed(1))
    assert mixed.shape == wave.shape and torch.isfinite(mixed).all()
    added = (mixed - wave).double()
    measured = 10 * torch.log10(wave.double().square().mean(1) / added.square().mean(1))
    assert torch.all((measured - snr_db).abs() < 0.1), measured
    again = mix_at_snr(wave, noise, snr_db, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mixed, again)


def test_mix_at_snr_long_noise_and_silence():
    wave = 0.1 * torch.randn(2000)
    noise = 0.2 * torch.randn(2, 9000)  # (B, M) longer than the wave: cropped at a random offset
    mixed = mix_at_snr(wave[None].repeat(2, 1), noise, 5.0)
    added = mixed - wave
    snr = 10 * torch.log10(wave.square().mean() / added.square().mean(1))
    assert torch.all((snr - 5.0).abs() < 0.1)
    assert torch.equal(mix_at_snr(wave, torch.zeros(100), 0.0), wave)  # silent noise: wave unchanged
    silent = mix_at_snr(torch.zeros(500), noise[0], 0.0)
    assert torch.isfinite(silent).all() and torch.all(silent == 0)
    np.testing.assert_array_equal(mix_at_snr(wave, noise[0], 10.0).shape, wave.shape)


def _tone_fbank(freqs_hz: list[float], sample_rate: int = 16000) -> torch.Tensor:
    t = torch.arange(sample_rate // 2) / sample_rate
    wave = sum(torch.sin(2 * torch.pi * f * t) for f in freqs_hz) * 3000.0
    feats, _ = fbank(wave[None], torch.tensor([wave.numel()]), sample_rate=sample_rate, n_mels=80)
    return feats


def test_vtlp_warp_moves_spectral_peaks_like_scaled_frequencies():
    # a "formant" pattern at 500/1500/2500 Hz warped by 1.12 must look like the pattern at 1.12x those frequencies
    base = [500.0, 1500.0, 2500.0]
    feats = _tone_fbank(base)
    assert torch.equal(vtlp_warp(feats, torch.tensor([1.0]), 16000), feats)
    for factor in (0.88, 1.12):
        warped = vtlp_warp(feats, torch.tensor([factor]), 16000)[0].mean(0)
        target = _tone_fbank([f * factor for f in base])[0].mean(0)
        peaks = lambda row: sorted(torch.topk(row, 3).indices.tolist())  # noqa: E731
        moved = [abs(a - b) for a, b in zip(peaks(warped), peaks(target))]
        assert max(moved) <= 1, (factor, peaks(warped), peaks(target))
        assert peaks(warped) != peaks(feats[0].mean(0))
        assert torch.corrcoef(torch.stack([warped, target]))[0, 1] > 0.9


def test_vtlp_warp_is_per_item_and_frontend_applies_it_in_training_only():
    from speechseq.asr.frontend import Frontend, FrontendConfig
    from speechseq.errors import ConfigError

    feats = _tone_fbank([700.0, 2200.0]).repeat(2, 1, 1)
    out = vtlp_warp(feats, torch.tensor([1.0, 1.1]), 16000)
    assert torch.equal(out[0], feats[0]) and not torch.allclose(out[1], feats[1])
    with pytest.raises(Exception, match="factors"):
        vtlp_warp(feats, torch.tensor([1.0, -1.0]), 16000)
    frontend = Frontend(FrontendConfig(vtlp=0.1, specaug_enabled=False))
    wave = torch.randn(2, 8000)
    lens = torch.tensor([8000, 8000])
    frontend.eval()
    clean, _ = frontend(wave, lens)
    assert torch.equal(frontend(wave, lens)[0], clean)
    frontend.train()
    torch.manual_seed(0)
    assert not torch.allclose(frontend(wave, lens)[0], clean)
    with pytest.raises(ConfigError, match="vtlp"):
        Frontend(FrontendConfig(vtlp=1.5))


def test_random_eq_curves_are_smooth_bounded_and_per_item():
    curves = random_eq_curves(64, 80, 6.0, num_terms=4, generator=torch.Generator().manual_seed(0))
    assert curves.shape == (64, 80)
    bound = 4 * 6.0 * np.log(10) / 10  # every cosine term at its largest
    assert curves.abs().max() <= bound + 1e-5 and curves.abs().max() > 0.3 * bound
    assert not torch.allclose(curves[0], curves[1])
    assert curves.diff(dim=1).abs().max() < 0.2 * bound  # smooth: no jumps between neighbouring bins
    assert torch.equal(random_eq_curves(3, 80, 0.0), torch.zeros(3, 80))
    level_only = random_eq_curves(5, 80, 3.0, num_terms=1, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(level_only, level_only[:, :1].expand(-1, 80))


def test_frontend_eq_applies_its_number_of_terms_in_training_only():
    from speechseq.asr.frontend import Frontend, FrontendConfig
    from speechseq.errors import ConfigError

    wave, lens = torch.randn(3, 8000), torch.tensor([8000, 8000, 8000])
    frontend = Frontend(FrontendConfig(eq_db=10.0, eq_terms=1, specaug_enabled=False)).eval()
    clean, _ = frontend(wave, lens)
    frontend.train()
    torch.manual_seed(0)
    diff = frontend(wave, lens)[0] - clean  # one level per utterance: the same offset in every frame and bin
    assert torch.allclose(diff, diff[:, :1, :1].expand_as(diff), atol=1e-4) and diff[:, 0, 0].abs().min() > 0
    frontend = Frontend(FrontendConfig(eq_db=10.0, eq_terms=4, specaug_enabled=False)).train()
    diff = frontend(wave, lens)[0] - clean  # a curve over the bins, still the same in every frame
    assert torch.allclose(diff, diff[:, :1].expand_as(diff), atol=1e-4) and diff[:, 0].std(dim=-1).min() > 0.05
    with pytest.raises(ConfigError, match="eq_terms"):
        Frontend(FrontendConfig(eq_db=1.0, eq_terms=0))


def test_utterance_cmn_removes_a_fixed_channel_and_ignores_padding():
    from speechseq.asr.frontend import Frontend, FrontendConfig

    torch.manual_seed(0)
    wave = torch.randn(1, 8000) * torch.linspace(0.1, 1.0, 8000)
    louder = 4.0 * wave  # a fixed channel gain: a constant offset on every log-mel frame
    cmn = Frontend(FrontendConfig(utterance_cmn=True, specaug_enabled=False)).eval()
    plain = Frontend(FrontendConfig(specaug_enabled=False)).eval()
    lens = torch.tensor([8000])
    assert torch.allclose(cmn(wave, lens)[0], cmn(louder, lens)[0], atol=1e-3)
    assert (plain(wave, lens)[0] - plain(louder, lens)[0]).abs().mean() > 1.0
    # each item's mean is over its own frames: batched beside a longer utterance (zero-padded) == alone
    longer = torch.randn(1, 16000)
    batch = torch.cat([torch.nn.functional.pad(wave, (0, 8000)), longer])
    feats, feat_lens = cmn(batch, torch.tensor([8000, 16000]))
    alone, alone_lens = cmn(wave, lens)
    assert feat_lens[0] == alone_lens[0]
    assert torch.allclose(feats[0, : alone_lens[0]], alone[0], atol=1e-4)
    valid = feats[1] * cmn.inv_std.reciprocal() + cmn.mean  # undo the global norm: the mean is the global mean
    assert torch.allclose(valid.mean(0), cmn.mean, atol=1e-4)

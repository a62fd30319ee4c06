"""Augmentation tests: SpecAugment masks, speed perturbation, noise mixing at a target SNR."""

import numpy as np
import pytest
import torch

from speechseq.audio.functional import mix_at_snr, spec_augment, speed_perturb
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

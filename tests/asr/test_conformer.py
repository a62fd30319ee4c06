import torch

from speechseq.asr.conformer import ConformerConfig, ConformerEncoder


def make(**kw):
    torch.manual_seed(0)
    cfg = ConformerConfig(num_features=24, d_model=16, num_layers=2, num_heads=4, conv_kernel=5, dropout=0.0,
                          attention_dropout=0.0, **kw)
    return ConformerEncoder(cfg).eval()


def test_batched_equals_single():
    enc = make()
    feats = torch.randn(3, 41, 24)
    lens = torch.tensor([41, 30, 17])
    out = enc(feats, lens)
    assert out.y.shape == (3, 9, 16) and out.y_lens.tolist() == [9, 6, 3]
    for b in range(3):
        alone = enc(feats[b:b + 1, : lens[b]], lens[b:b + 1])
        assert torch.allclose(alone.y[0], out.y[b, : out.y_lens[b]], atol=1e-5)


def test_chunked_attention_with_causal_conv_hides_the_future():
    enc = make(causal_conv=True, subsampling="dw_striding")
    feats = torch.randn(1, 64, 24)
    lens = torch.tensor([64])
    out = enc(feats, lens, chunk_size=4, left_chunks=-1)
    changed = feats.clone()
    changed[:, 40:] += torch.randn(1, 24, 24)  # feature frames >= 40 -> encoder frames >= 10 (x4)
    out2 = enc(changed, lens, chunk_size=4, left_chunks=-1)
    # encoder frames in chunks before the one holding frame 9 (chunks of 4: frames 0..7) must not change
    assert torch.allclose(out.y[:, :8], out2.y[:, :8], atol=1e-5)
    assert not torch.allclose(out.y[:, 12:], out2.y[:, 12:])
    full = enc(feats, lens, chunk_size=0)
    full2 = enc(changed, lens, chunk_size=0)
    assert not torch.allclose(full.y[:, :8], full2.y[:, :8])  # full context does see the future


def test_intermediate_outputs_and_condition():
    enc = make()
    feats, lens = torch.randn(2, 33, 24), torch.tensor([33, 20])
    calls = []

    class Cond(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape)
            return x * 0

    out = enc(feats, lens, inter_layers=(1,), condition=Cond())
    assert len(out.inter) == 1 and calls == [out.inter[0].shape]
    plain = enc(feats, lens)
    assert not torch.allclose(out.y, plain.y)

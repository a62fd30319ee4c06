import pytest
import torch

from speechseq.layers.attention import RelPositionAttention, rel_positions, rel_shift
from speechseq.layers.conv import ConvModule
from speechseq.layers.masks import attention_mask, band_mask, chunk_mask, valid_mask
from speechseq.layers.subsampling import Subsampling


def test_valid_and_chunk_masks():
    assert valid_mask(torch.tensor([2, 4]), 5).tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]]
    m = chunk_mask(7, chunk_size=2, left_chunks=1)
    assert m.shape == (7, 7)
    # frame 5 is in chunk 2: sees chunks 1..2 = frames 2..5, never 6 (future chunk 3) or 0..1 (too far left)
    assert m[5].nonzero().squeeze(1).tolist() == [2, 3, 4, 5]
    assert m[4].nonzero().squeeze(1).tolist() == [2, 3, 4, 5]
    unlimited = chunk_mask(7, 2, -1)
    assert unlimited[6].all() and not unlimited[0, 2]
    assert chunk_mask(5, 0).all()
    band = band_mask(6, left=2, right=1)
    assert band[3].nonzero().squeeze(1).tolist() == [1, 2, 3, 4]


def test_attention_mask_combines_padding_and_chunks():
    lens = torch.tensor([3, 5])
    m = attention_mask(lens, 5, chunk_size=2, left_chunks=-1)
    assert m.shape == (2, 5, 5)
    assert not m[0, 1, 3] and not m[0, 2, 3]  # key 3 is padding for item 0
    assert m[0, 4].tolist() == [True, True, True, False, True]  # a padded query row is never all-masked
    assert m[1, 2, 3] and not m[1, 1, 2]  # chunk structure for item 1


def test_rel_shift_matches_gather_reference():
    b, h, tq, tk = 3, 2, 4, 7
    scores = torch.randn(b, h, tq, tk + tq - 1)
    out = rel_shift(scores, tk)
    i = torch.arange(tq)[:, None]
    j = torch.arange(tk)[None, :]
    ref = scores[:, :, i.expand(tq, tk), (tq - 1 - i + j)]
    assert torch.equal(out, ref)
    pe = rel_positions(tq, tk, 8, torch.device("cpu"), torch.float32)
    assert pe.shape == (tk + tq - 1, 8)
    # column Tq-1-i+j holds distance (Tk-Tq+i) - j: the query/key distance
    assert torch.allclose(pe[tk - 1], torch.tensor([0.0, 1.0] * 4))  # distance 0 -> sin 0, cos 0


def test_attention_with_cache_equals_full_suffix():
    torch.manual_seed(0)
    att = RelPositionAttention(16, 4).eval()
    x = torch.randn(2, 9, 16)
    full, _ = att(x, torch.ones(2, 9, 9, dtype=torch.bool))
    tail, kv = att(x[:, 6:], torch.ones(2, 3, 9, dtype=torch.bool), cache=x[:, :6])
    assert kv.shape == (2, 9, 16)
    assert torch.allclose(full[:, 6:], tail, atol=1e-5)


def _reference_attention(att: RelPositionAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The rel-pos attention formula written out: scores, masked softmax, weighted sum (no fused kernels)."""
    b, t, d = x.shape
    h, dh = att.num_heads, att.head_dim
    q, k, v = (y.view(b, t, h, dh).transpose(1, 2) for y in att.qkv(x).split(d, dim=-1))
    p = att.pos(rel_positions(t, t, d, x.device, x.dtype)).view(-1, h, dh).transpose(0, 1)  # (H, 2T-1, Dh)
    i, j = torch.arange(t, device=x.device)[:, None], torch.arange(t, device=x.device)[None, :]
    p_ij = p[:, (t - 1 - i + j)]  # (H, T, T, Dh): embedding of distance i - j
    scores = (torch.einsum("bhid,bhjd->bhij", q + att.pos_bias_u[None, :, None], k)
              + torch.einsum("bhid,hijd->bhij", q + att.pos_bias_v[None, :, None], p_ij)) / dh ** 0.5
    probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), dim=-1)
    return att.out((probs @ v).transpose(1, 2).reshape(b, t, d))


def test_attention_equals_reference_formula_with_gradients():
    torch.manual_seed(0)
    att = RelPositionAttention(16, 4, dropout=0.0).train()
    x = torch.randn(2, 7, 16, requires_grad=True)
    mask = attention_mask(torch.tensor([7, 4]), 7, chunk_size=3, left_chunks=1)
    out, _ = att(x, mask)
    ref = _reference_attention(att, x, mask)
    assert torch.allclose(out, ref, atol=1e-5)
    params = [x, att.qkv.weight, att.pos.weight, att.pos_bias_u, att.pos_bias_v]
    g_out = torch.autograd.grad(out.square().sum(), params)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    for a, r in zip(g_out, g_ref):
        assert torch.allclose(a, r, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attention_on_cuda_with_autocast_matches_reference():
    """The fused kernels CUDA picks (with a grad-carrying bias in training), under bf16 autocast: forward and
    gradients close to the fp32 formula."""
    torch.manual_seed(0)
    att = RelPositionAttention(64, 4, dropout=0.0).cuda().train()
    x = torch.randn(2, 37, 64, device="cuda", requires_grad=True)
    mask = attention_mask(torch.tensor([37, 20], device="cuda"), 37, chunk_size=8, left_chunks=2)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, _ = att(x, mask)
    ref = _reference_attention(att, x, mask)
    assert torch.allclose(out.float(), ref, atol=3e-2, rtol=3e-2)
    g_out = torch.autograd.grad(out.float().square().sum(), [att.pos_bias_v, att.qkv.weight])
    g_ref = torch.autograd.grad(ref.square().sum(), [att.pos_bias_v, att.qkv.weight])
    for a, r in zip(g_out, g_ref):
        assert (a - r).norm() < 0.05 * r.norm()


def test_conv_module_equals_conv1d_formulation():
    """The pointwise convs run as matmuls: same result as Conv1d layers on (B, D, T), for both norms."""
    torch.manual_seed(0)
    for norm in ("layer", "batch"):
        conv = ConvModule(8, 5, norm=norm).eval()
        if norm == "batch":
            conv.norm.running_mean.normal_()
            conv.norm.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 9, 8)
        valid = torch.arange(9)[None] < torch.tensor([[9], [6]])
        out, _ = conv(x, valid)
        h = torch.nn.functional.glu(conv.pointwise_in(x.transpose(1, 2)), dim=1) * valid[:, None]
        h = conv.depthwise(torch.nn.functional.pad(h, (2, 2)))
        h = conv.norm(h.transpose(1, 2)).transpose(1, 2) if norm == "layer" else conv.norm(h)
        ref = conv.pointwise_out(torch.nn.functional.silu(h)).transpose(1, 2)
        assert torch.allclose(out, ref, atol=1e-5)


def test_batch_norm_conv_in_training_ignores_padding():
    """BatchNorm's training statistics come from valid frames: padding the batch more changes nothing, and without
    padding it equals nn.BatchNorm1d (output and running statistics)."""
    torch.manual_seed(0)
    conv = ConvModule(8, 5, norm="batch").train()
    x = torch.randn(2, 9, 8)
    lens = torch.tensor([[9], [6]])
    out, _ = conv(x, torch.arange(9)[None] < lens)
    longer = torch.cat([x, torch.randn(2, 4, 8)], 1)  # 4 more padded frames, with other values
    out_longer, _ = conv(longer, torch.arange(13)[None] < lens)
    assert torch.allclose(out[0], out_longer[0, :9], atol=1e-5) and torch.allclose(out[1, :6], out_longer[1, :6], atol=1e-5)
    plain = ConvModule(8, 5, norm="batch").train()
    plain.load_state_dict(conv.state_dict() | {"norm.running_mean": torch.zeros(8), "norm.running_var": torch.ones(8),
                                                "norm.num_batches_tracked": torch.tensor(0)})
    full = torch.ones(2, 9, dtype=torch.bool)
    ours, _ = plain(x, full)
    ref_bn = torch.nn.BatchNorm1d(8).train()
    h = torch.nn.functional.glu(plain.pointwise_in(x.transpose(1, 2)), dim=1)
    h = ref_bn(plain.depthwise(torch.nn.functional.pad(h, (2, 2))))
    ref = plain.pointwise_out(torch.nn.functional.silu(h)).transpose(1, 2)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(plain.norm.running_mean, ref_bn.running_mean, atol=1e-6)
    assert torch.allclose(plain.norm.running_var, ref_bn.running_var, atol=1e-5)


def test_causal_conv_ignores_future_and_padding():
    torch.manual_seed(0)
    conv = ConvModule(16, 5, causal=True).eval()
    x = torch.randn(1, 10, 16)
    valid = torch.ones(1, 10, dtype=torch.bool)
    y, _ = conv(x, valid)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(1, 3, 16)
    y2, _ = conv(x2, valid)
    assert torch.allclose(y[:, :7], y2[:, :7], atol=1e-6) and not torch.allclose(y[:, 7:], y2[:, 7:])
    sym = ConvModule(16, 5, causal=False).eval()
    a, _ = sym(x, valid)
    b, _ = sym(x2, valid)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5], b[:, 5])


def test_subsampling_lengths_and_batch_consistency():
    torch.manual_seed(0)
    for kind, factor in [("conv2d", 4), ("dw_striding", 4), ("dw_striding", 8)]:
        sub = Subsampling(24, 16, factor, kind).eval()
        feats = torch.randn(3, 37, 24)
        lens = torch.tensor([37, 29, 13])
        y, y_lens = sub(feats, lens)
        assert y.shape == (3, int(y_lens.max()), 16)
        assert sub.output_lens(lens).tolist() == y_lens.tolist()
        for b in range(3):
            alone, alone_len = sub(feats[b:b + 1, : lens[b]], lens[b:b + 1])
            assert alone_len.item() == y_lens[b].item()
            assert torch.allclose(alone[0], y[b, : y_lens[b]], atol=1e-5), (kind, factor, b)



def test_subsampling_equals_plain_conv2d_formulation():
    """The channels-last, in-place forward computes relu(conv(x)) with padded frames zeroed after every stage, as
    the modules' own NCHW Conv2d layers do, and gives the same gradients."""
    torch.manual_seed(0)
    for kind, factor in [("conv2d", 4), ("dw_striding", 8)]:
        sub = Subsampling(24, 16, factor, kind, channels=8)
        feats = torch.randn(3, 41, 24)
        lens = torch.tensor([41, 30, 17])
        x, n = feats[:, None] * (torch.arange(41)[None] < lens[:, None])[:, None, :, None], lens
        for conv in sub.convs:
            x = torch.relu(conv(x))
            n = (n - 1) // 2 + (0 if kind == "conv2d" else 1)
            x = x * (torch.arange(x.shape[2])[None] < n[:, None])[:, None, :, None]
        ref = sub.out(x.transpose(1, 2).flatten(2))
        w = torch.randn_like(ref)
        (ref * w).sum().backward()
        ref_grads = [p.grad.clone() for p in sub.parameters()]
        sub.zero_grad()
        y, y_lens = sub(feats, lens)
        (y * w).sum().backward()
        assert y_lens.tolist() == n.tolist()
        assert torch.allclose(y, ref, atol=1e-5), kind
        for r, p in zip(ref_grads, sub.parameters()):
            assert torch.allclose(p.grad, r, atol=1e-4, rtol=1e-4), kind

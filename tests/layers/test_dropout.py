import pytest
import torch

from speechseq.layers.dropout import Dropout, dropout


def test_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(400, 1000, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.003  # 400k draws: the std of the rate is 0.0005
    scale = 65536 / (65536 - round(0.1 * 65536))
    assert torch.allclose(y[kept], torch.full_like(y[kept], scale))
    assert abs(y.mean().item() - 1.0) < 0.005  # the expectation is kept
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad, 2.0 * y.detach())  # d/dx (x * mask * scale) = mask * scale
    # every mask element is drawn independently: no row or column pattern
    rows, cols = kept.float().mean(1), kept.float().mean(0)
    assert rows.std() < 0.03 and cols.std() < 0.05


def test_dropout_is_identity_when_off_and_reproducible():
    x = torch.randn(7, 33)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    layer = Dropout(0.3).eval()
    assert layer(x) is x
    layer.train()
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    b = layer(x)
    assert torch.equal(a, b) and not torch.equal(a, layer(x))
    assert a.shape == x.shape and a.dtype == x.dtype
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 1.0, training=True)


def test_dropout_odd_sizes_and_bf16():
    torch.manual_seed(0)
    for shape in [(1,), (3,), (5, 7, 9)]:
        y = dropout(torch.ones(shape), 0.5, training=True)
        assert y.shape == shape and set(y.unique().tolist()) <= {0.0, 2.0}
    y = dropout(torch.ones(1000, dtype=torch.bfloat16), 0.25, training=True)
    assert y.dtype == torch.bfloat16 and 0.2 < (y == 0).float().mean().item() < 0.3

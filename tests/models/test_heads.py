"""Tests for fairmetric.models.heads: gradient reversal, attribute heads, MLPs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close

from fairmetric.models.heads import MLP, AttributeHead, GradientReversal, grad_reverse


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.5])
def test_grad_reverse_is_identity_forward_and_scales_gradient_by_minus_alpha(alpha):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = grad_reverse(x, alpha)
    assert torch.equal(y, x)
    (gx,) = torch.autograd.grad(y, x, upstream)
    assert_close(gx, -alpha * upstream)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.5])
def test_grad_reverse_inside_a_graph_reverses_only_what_flows_through_it(alpha):
    # L = w·R(2x) + v·x  →  dL/dx = -alpha * 2w + v
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    w, v = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(4, generator=g).double()
    loss = (w * grad_reverse(2 * x, alpha)).sum() + (v * x).sum()
    (gx,) = torch.autograd.grad(loss, x)
    assert_close(gx, -alpha * 2 * w + v)


def test_gradient_reversal_module_alpha_is_settable():
    m = GradientReversal(1.0)
    x = torch.ones(3, requires_grad=True)
    m.alpha = 2.5
    m(x).sum().backward()
    assert_close(x.grad, torch.full((3,), -2.5))
    assert "alpha=2.5" in repr(m)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "1", True, torch.ones(2)])
def test_invalid_alpha_is_rejected(bad):
    with pytest.raises(ValueError, match="alpha"):
        grad_reverse(torch.ones(2), bad)
    with pytest.raises(ValueError, match="alpha"):
        GradientReversal(bad)
    m = GradientReversal()
    with pytest.raises(ValueError, match="alpha"):
        m.alpha = bad


def test_attribute_head_shape_and_normalisation():
    torch.manual_seed(0)
    head = AttributeHead(6, 4)
    h = torch.randn(10, 6)
    e_s = head(h)
    assert e_s.shape == (10, 4)
    assert_close(e_s.norm(dim=1), torch.ones(10))
    raw = head.project(h)
    assert_close(raw, h @ head.head.weight.T + head.head.bias)  # Embedder-style linear head
    assert_close(e_s, raw / raw.norm(dim=1, keepdim=True))
    plain = AttributeHead(6, 4, normalize=False)
    assert torch.equal(plain(h), plain.project(h))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        head(torch.randn(10, 5))
    with pytest.raises(ValueError, match="embedding_dim"):
        AttributeHead(6, 0)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_mlp_shape_and_structure(layers):
    mlp = MLP(5, 3, hidden=7, layers=layers)
    assert mlp(torch.randn(4, 5)).shape == (4, 3)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert len(linears) == layers
    assert [lin.out_features for lin in linears] == [7] * (layers - 1) + [3]
    assert sum(isinstance(m, nn.ReLU) for m in mlp) == layers - 1
    assert isinstance(mlp[-1], nn.Linear)  # no activation on the output


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="layers"):
        MLP(5, 3, layers=0)
    with pytest.raises(ValueError, match="hidden"):
        MLP(5, 3, hidden=0)

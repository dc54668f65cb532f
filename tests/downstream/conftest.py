"""Downstream test fixtures: fixed embeddings from scikit-learn's digits, single-threaded torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spin-waits that
    make each step tens of times slower when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digit_embeddings() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: scikit-learn's 8×8 digits through a fixed random
    projection to 16 dimensions, plus a little noise so no two rows tie in distance; labels are
    shifted to 5..14 so label mapping is exercised."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    proj = rng.standard_normal((64, 16)) / 8.0
    x = (d.data @ proj + 0.01 * rng.standard_normal((len(d.data), 16))).astype(np.float32)
    y = d.target.astype(np.int64) + 5
    order = rng.permutation(len(x))
    train, test = order[:1000], order[1000:1400]
    return x[train], y[train], x[test], y[test]

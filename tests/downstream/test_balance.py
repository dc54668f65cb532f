"""Balancing the downstream training set, and the stratified downstream split."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.downstream import balance_by_attribute, balance_indices, stratified_split
from fairmetric.embeddings import EmbeddingSet


def _imbalanced(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0..3 and a 3-valued attribute whose value 0 dominates (each cell non-empty)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    values = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    return labels, values


def _cells(labels, values, idx):
    return {
        (c, v): int(np.sum((labels[idx] == c) & (values[idx] == v)))
        for c in np.unique(labels)
        for v in np.unique(values)
    }


def test_none_is_the_identity():
    labels, values = _imbalanced()
    idx = balance_indices(labels, values, mode="none")
    assert np.array_equal(idx, np.arange(len(labels)))
    data = EmbeddingSet(
        embeddings=np.ones((len(labels), 2)), labels=labels, attributes={"colour": values}
    )
    assert np.array_equal(balance_by_attribute(data, None, mode="none"), idx)


def test_attribute_mode_equalises_counts_within_each_class():
    labels, values = _imbalanced()
    idx = balance_indices(labels, values, mode="attribute", seed=1)
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    before, after = _cells(labels, values, np.arange(len(labels))), _cells(labels, values, idx)
    for c in range(4):
        smallest = min(before[(c, v)] for v in range(3))
        assert [after[(c, v)] for v in range(3)] == [smallest] * 3, c
    counts = np.bincount(values[idx])
    assert counts.tolist() == [counts[0]] * 3  # hence equal per value overall
    # reproducible under the seed, and a different seed draws other samples
    assert np.array_equal(idx, balance_indices(labels, values, mode="attribute", seed=1))
    assert not np.array_equal(idx, balance_indices(labels, values, mode="attribute", seed=2))


def test_attribute_mode_over_the_whole_set():
    labels, values = _imbalanced()
    idx = balance_indices(labels, values, mode="attribute", per_class=False)
    smallest = np.bincount(values).min()
    assert np.bincount(values[idx]).tolist() == [smallest] * 3


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_imbalanced_mode_sets_the_minority_share_per_class(share):
    labels, values = _imbalanced(2000)
    idx = balance_indices(labels, values, mode="imbalanced", share=share, minority_value=1)
    for c in range(4):
        sel = values[idx][labels[idx] == c]
        n_min = int(np.sum(sel == 1))
        # the share is met up to rounding of one sample
        assert abs(n_min - share * len(sel)) <= 1 + share, (c, n_min, len(sel))
    whole = balance_indices(
        labels, values, mode="imbalanced", share=share, minority_value=1, per_class=False
    )
    assert abs(np.mean(values[whole] == 1) - share) < 1 / len(whole) + 1e-9


def test_balance_by_attribute_reads_names_and_refuses_bad_requests():
    labels, values = _imbalanced()
    data = EmbeddingSet(
        embeddings=np.ones((len(labels), 2)),
        labels=labels,
        attributes={"colour": values, "sex": values % 2},
        attribute_value_names={"colour": ["light", "dark", "blue", "grey"]},
    )
    with pytest.raises(ValueError, match="unknown attribute 'skin'.*colour, sex"):
        balance_by_attribute(data, "skin")
    with pytest.raises(ValueError, match="name the attribute.*colour, sex"):
        balance_by_attribute(data, None)
    # 'grey' is a named value of colour without a sample
    with pytest.raises(ValueError, match="value 'grey' of attribute 'colour' has no samples"):
        balance_by_attribute(data, "colour")
    idx = balance_by_attribute(data, "sex", seed=0)
    assert np.bincount(values[idx] % 2).tolist() == [len(idx) // 2] * 2
    with pytest.raises(ValueError, match="unknown balance mode 'equal'"):
        balance_by_attribute(data, "sex", mode="equal")
    with pytest.raises(ValueError, match="share in \\(0, 1\\)"):
        balance_by_attribute(data, "sex", mode="imbalanced")
    with pytest.raises(ValueError, match="apply to mode='imbalanced' only"):
        balance_by_attribute(data, "sex", share=0.1)


def test_class_without_a_value_needs_per_class_false():
    labels = np.array([0, 0, 0, 1, 1, 1])
    values = np.array([0, 1, 1, 0, 0, 0])  # class 1 has no value 1
    with pytest.raises(ValueError, match="no samples in class 1.*per_class=False"):
        balance_indices(labels, values, mode="attribute")
    idx = balance_indices(labels, values, mode="attribute", per_class=False)
    assert np.bincount(values[idx]).tolist() == [2, 2]
    with pytest.raises(ValueError, match="single value"):
        balance_indices(labels, np.zeros(6, dtype=int), mode="attribute")


def test_stratified_split_keeps_every_cell_on_both_sides():
    labels, values = _imbalanced(601)
    train, test = stratified_split(labels, [values], test_fraction=0.3, seed=3)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(601))
    full, te = _cells(labels, values, np.arange(601)), _cells(labels, values, test)
    for cell, n in full.items():
        expected = min(max(round(0.3 * n), 1), n - 1) if n >= 2 else 0
        assert te[cell] == expected, cell
    again = stratified_split(labels, [values], test_fraction=0.3, seed=3)
    assert np.array_equal(again[1], test)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(labels, test_fraction=1.0)
    with pytest.raises(ValueError, match="strata\\[0\\] has shape"):
        stratified_split(labels, [values[:-1]])


def test_split_and_balance_is_the_stratified_split_then_the_balance_of_its_training_half():
    from fairmetric.downstream.balance import split_and_balance
    from fairmetric.downstream.split import stratified_split
    from fairmetric.embeddings import EmbeddingSet

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 20)
    colour = (rng.random(120) < 0.2).astype(int)
    emb = EmbeddingSet(
        embeddings=rng.normal(size=(120, 4)), labels=labels, attributes={"c": colour}
    )
    kwargs = dict(
        test_fraction=0.5, seed=3, balance_per_class=False, share=None, minority_value=None
    )
    train, test, before, attribute = split_and_balance(
        emb, balance="attribute", balance_attribute=None, **kwargs
    )
    ref_train, ref_test = stratified_split(labels, [colour], test_fraction=0.5, seed=3)
    keep = balance_by_attribute(
        emb.subset(ref_train), "c", mode="attribute", per_class=False, seed=3
    )
    assert attribute == "c" and before == len(ref_train)  # the only attribute, by default
    np.testing.assert_array_equal(test, ref_test)
    np.testing.assert_array_equal(train, ref_train[keep])
    counts = np.bincount(colour[train], minlength=2)
    assert counts[0] == counts[1]  # balanced by colour
    plain, _, _, none = split_and_balance(emb, balance="none", balance_attribute=None, **kwargs)
    np.testing.assert_array_equal(plain, ref_train)
    assert none is None
    two = EmbeddingSet(
        embeddings=emb.embeddings, labels=labels, attributes={"c": colour, "d": colour[::-1]}
    )
    with pytest.raises(ValueError, match="name the attribute to balance by.*c, d"):
        split_and_balance(two, balance="attribute", balance_attribute=None, **kwargs)

"""Tests for fairmetric.data.splits: class-disjoint splits, imbalanced subsampling, shares."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmetric.data.dataset import AttributeDataset
from fairmetric.data.splits import attribute_share, class_disjoint_split, imbalanced_subsample


class IndexDataset(AttributeDataset):
    def load_input(self, index: int) -> int:
        return index


def make_dataset(labels, attribute, **kwargs) -> IndexDataset:
    """A dataset with one attribute ``a`` and a per-sample ``uid`` (its index) for tracking."""
    ds = IndexDataset(labels=np.asarray(labels), attributes={"a": np.asarray(attribute)}, **kwargs)
    ds.uid = np.arange(len(ds))
    return ds


def blocks(sizes, values) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0, 1, ... in blocks of the given sizes; the attribute is constant per class."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return labels, np.repeat(values, sizes)


def share_reference(attribute: np.ndarray, value: int) -> float:
    hits = 0
    for a in attribute:
        hits += int(a == value)
    return hits / len(attribute)


# -- class_disjoint_split ---------------------------------------------------------------------
def check_disjoint(ds, train, test) -> None:
    """The split invariants, checked through the parent indices of both sides."""
    assert set(train.labels.tolist()).isdisjoint(test.labels.tolist())
    assert set(train.labels.tolist()) | set(test.labels.tolist()) == set(ds.labels.tolist())
    both = np.concatenate([train.uid, test.uid])
    assert sorted(both.tolist()) == list(range(len(ds)))  # every sample exactly once
    for part in (train, test):
        assert len(part) > 0
        assert np.all(np.diff(part.uid) > 0)  # dataset order is kept
        assert np.array_equal(part.labels, ds.labels[part.uid])
        assert np.array_equal(part.attributes, ds.attributes[part.uid])
        assert part.label_names == ds.label_names
        assert part.attribute_value_names == ds.attribute_value_names
    # all samples of a class go to the same side
    for c in np.unique(ds.labels):
        side = {
            ("train" if u in set(train.uid.tolist()) else "test")
            for u in np.flatnonzero(ds.labels == c)
        }
        assert len(side) == 1


def test_class_disjoint_split_basic():
    labels = ["p", "q", "r", "s", "p", "q", "r", "s", "t", "u"]
    ds = make_dataset(labels, [0, 1] * 5)
    train, test = class_disjoint_split(ds, test_fraction=0.5, seed=3)
    check_disjoint(ds, train, test)
    assert len(np.unique(test.labels)) == 3 and len(np.unique(train.labels)) == 3


@pytest.mark.parametrize(
    "n_classes, fraction, n_test",
    [
        (10, 0.3, 3),
        (10, 0.74, 7),
        (10, 0.05, 1),
        (4, 0.1, 1),
        (4, 0.95, 3),
        (2, 0.5, 1),
        (3, 0.01, 1),
    ],
)
def test_class_disjoint_test_fraction_rounding(n_classes, fraction, n_test):
    ds = make_dataset(np.repeat(np.arange(n_classes), 2), np.zeros(2 * n_classes, dtype=int))
    train, test = class_disjoint_split(ds, test_fraction=fraction)
    check_disjoint(ds, train, test)
    assert len(np.unique(test.labels)) == n_test
    assert len(np.unique(train.labels)) == n_classes - n_test


def test_class_disjoint_seed():
    ds = make_dataset(np.arange(20), np.zeros(20, dtype=int))
    first = [class_disjoint_split(ds, seed=s)[1].labels.tolist() for s in range(5)]
    again = [class_disjoint_split(ds, seed=s)[1].labels.tolist() for s in range(5)]
    assert first == again
    assert len({tuple(t) for t in first}) > 1


def test_class_disjoint_explicit_test_classes():
    ds = make_dataset([0, 1, 2, 3, 0, 1, 2, 3], [0] * 8)
    train, test = class_disjoint_split(ds, test_classes=np.array([3, 1, 1]), test_fraction=7.0)
    check_disjoint(ds, train, test)  # test_fraction is ignored
    assert test.uid.tolist() == [1, 3, 5, 7] and train.uid.tolist() == [0, 2, 4, 6]


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        ([0, 0, 0], {}, "needs at least 2 classes, the dataset has 1"),
        ([], {}, "needs at least 2 classes, the dataset has 0"),
        (
            [0, 1, 2],
            dict(test_classes=[2, 5, 7]),
            "test_classes not present in the dataset: \\[5, 7\\]",
        ),
        ([0, 1, 2], dict(test_classes=[]), "at least one class on each side"),
        ([0, 1, 2], dict(test_classes=[0, 1, 2]), "at least one class on each side"),
        ([0, 1, 2], dict(test_fraction=0.0), "test_fraction must lie in \\(0, 1\\), got 0.0"),
        ([0, 1, 2], dict(test_fraction=1.0), "test_fraction must lie in \\(0, 1\\), got 1.0"),
        ([0, 1, 2], dict(test_fraction=-0.2), "test_fraction must lie in \\(0, 1\\)"),
    ],
)
def test_class_disjoint_errors(labels, kwargs, message):
    ds = make_dataset(np.asarray(labels, dtype=np.int64), np.zeros(len(labels), dtype=np.int64))
    with pytest.raises(ValueError, match=message):
        class_disjoint_split(ds, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 7), min_size=2, max_size=40).filter(lambda v: len(set(v)) >= 2),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**16),
)
def test_class_disjoint_split_invariants(labels, fraction, seed):
    ds = make_dataset(labels, np.zeros(len(labels), dtype=int))
    train, test = class_disjoint_split(ds, test_fraction=fraction, seed=seed)
    check_disjoint(ds, train, test)
    n_classes = len(set(labels))
    expected = min(max(int(round(fraction * n_classes)), 1), n_classes - 1)
    assert len(np.unique(test.labels)) == expected


# -- attribute_share --------------------------------------------------------------------------
def test_attribute_share_matches_counting():
    attribute = [0, 2, 2, 1, 2, 0, 0]
    ds = make_dataset(np.zeros(7, dtype=int), attribute)
    for v in (0, 1, 2, 3):
        assert attribute_share(ds, "a", v) == share_reference(np.asarray(attribute), v)
    assert attribute_share(ds.subset([]), "a", 0) == 0.0
    with pytest.raises(ValueError, match="unknown attribute 'b'"):
        attribute_share(ds, "b", 0)


# -- imbalanced_subsample, by="sample" --------------------------------------------------------
def population(n_min: int = 60, n_rest: int = 140, seed: int = 0) -> IndexDataset:
    """Minority value 1 in ``n_min`` of ``n_min + n_rest`` samples, spread over 20 classes."""
    rng = np.random.default_rng(seed)
    attribute = rng.permutation(np.r_[np.ones(n_min, dtype=int), np.zeros(n_rest, dtype=int)])
    return make_dataset(np.arange(n_min + n_rest) % 20, attribute)


def check_subsample(ds, sub, value: int, target: float) -> None:
    """Only removals, no duplicates, and the target share up to one sample."""
    uid = sub.uid
    assert len(np.unique(uid)) == len(uid)
    assert set(uid.tolist()) <= set(range(len(ds)))
    assert np.array_equal(sub.labels, ds.labels[uid])
    assert np.array_equal(sub.attributes, ds.attributes[uid])
    achieved = share_reference(sub.attribute("a"), value)
    assert abs(achieved - target) <= 1 / len(sub)


@pytest.mark.parametrize("target", [0.05, 0.1, 0.2, 0.299])
def test_sample_subsample_lowers_the_minority_share(target):
    ds = population()
    sub = imbalanced_subsample(ds, attribute="a", share=target, minority_value=1, seed=1)
    check_subsample(ds, sub, 1, target)
    # only minority samples were dropped
    assert (sub.attribute("a") == 0).sum() == 140
    # the kept count is the best reachable one (brute force over every possible count)
    best = min(range(61), key=lambda k: abs(k / (k + 140) - target))
    assert abs(int((sub.attribute("a") == 1).sum()) - best) <= 1


@pytest.mark.parametrize("target", [0.31, 0.5, 0.8, 0.95])
def test_sample_subsample_raises_the_minority_share(target):
    ds = population()
    sub = imbalanced_subsample(ds, attribute="a", share=target, minority_value=1, seed=1)
    check_subsample(ds, sub, 1, target)
    assert (sub.attribute("a") == 1).sum() == 60  # every minority sample kept
    best = min(range(141), key=lambda k: abs(60 / (60 + k) - target))
    assert abs(int((sub.attribute("a") == 0).sum()) - best) <= 1


def test_sample_subsample_at_the_current_share_keeps_everything():
    ds = population()
    sub = imbalanced_subsample(ds, attribute="a", share=0.3, minority_value=1)
    assert sub.uid.tolist() == list(range(200))


def test_subsample_seed():
    ds = population()
    runs = [
        imbalanced_subsample(ds, attribute="a", share=0.1, seed=s).uid.tolist() for s in (0, 0, 1)
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_subsample_default_minority_is_the_least_frequent_present_value():
    # value 3 is named but absent; value 1 is the least frequent of those present
    attribute = np.r_[np.zeros(50, int), np.ones(20, int), np.full(30, 2)]
    ds = make_dataset(
        np.arange(100) % 10, attribute, attribute_value_names={"a": ["w", "x", "y", "z"]}
    )
    sub = imbalanced_subsample(ds, attribute="a", share=0.1)
    check_subsample(ds, sub, 1, 0.1)
    assert (sub.attribute("a") == 0).sum() == 50 and (sub.attribute("a") == 2).sum() == 30


def test_subsample_other_value_as_minority():
    attribute = np.r_[np.zeros(50, int), np.ones(20, int), np.full(30, 2)]
    ds = make_dataset(np.arange(100) % 10, attribute)
    sub = imbalanced_subsample(ds, attribute="a", share=0.2, minority_value=0)
    check_subsample(ds, sub, 0, 0.2)
    assert (sub.attribute("a") == 1).sum() == 20 and (sub.attribute("a") == 2).sum() == 30


def test_subsample_keeps_at_least_one_sample_of_the_reduced_side():
    ds = make_dataset(np.arange(20) % 4, np.r_[np.ones(10, int), np.zeros(10, int)])
    sub = imbalanced_subsample(ds, attribute="a", share=0.01, minority_value=1)
    assert (sub.attribute("a") == 1).sum() == 1 and (sub.attribute("a") == 0).sum() == 10


@settings(max_examples=80, deadline=None)
@given(
    attribute=st.lists(st.integers(0, 1), min_size=2, max_size=60).filter(
        lambda v: 0 < sum(v) < len(v)
    ),
    share=st.floats(0.02, 0.98),
    seed=st.integers(0, 2**16),
)
def test_sample_subsample_property(attribute, share, seed):
    ds = make_dataset(np.arange(len(attribute)) % 5, attribute)
    sub = imbalanced_subsample(ds, attribute="a", share=share, minority_value=1, seed=seed)
    check_subsample(ds, sub, 1, share)
    kept = sub.attribute("a")
    original = np.asarray(attribute)
    # one side is untouched
    assert (kept == 1).sum() == (original == 1).sum() or (kept == 0).sum() == (original == 0).sum()


# -- imbalanced_subsample, by="class" ---------------------------------------------------------
def check_complete_classes(ds, sub) -> None:
    for c in np.unique(sub.labels):
        assert (sub.labels == c).sum() == (ds.labels == c).sum()


def test_class_subsample_lowers_the_share_with_complete_classes():
    # minority (value 1): 6 classes of 7 samples (42); majority: 10 classes of 10 samples (100)
    labels, attribute = blocks([7] * 6 + [10] * 10, [1] * 6 + [0] * 10)
    ds = make_dataset(labels, attribute)
    for target in (0.1, 0.2, 0.25):
        sub = imbalanced_subsample(ds, attribute="a", share=target, minority_value=1, by="class")
        check_complete_classes(ds, sub)
        achieved = share_reference(sub.attribute("a"), 1)
        assert 0 < achieved <= target
        assert (sub.attribute("a") == 0).sum() == 100
        # one more minority class would overshoot the target
        n_min = int((sub.attribute("a") == 1).sum())
        assert (n_min + 7) / (n_min + 7 + 100) > target


@pytest.mark.parametrize(
    "sizes, values, target",
    [
        # raising: 10 minority samples in one class, 10 majority classes of 7. Target 0.5 needs
        # 10 majority samples: two classes (14, share 0.417) are at or below, one (7) is above.
        ([10] + [7] * 10, [1] + [0] * 10, 0.5),
        # lowering: 3 minority classes of 7, 100 majority samples. The target needs 13.6
        # minority samples, rounded to 14 = two classes, share 14/114 = 0.1228 > 0.1197.
        ([7] * 3 + [10] * 10, [1] * 3 + [0] * 10, 13.6 / 113.6),
    ],
    ids=["raising", "lowering"],
)
def test_class_subsample_share_is_at_or_below_the_target(sizes, values, target):
    labels, attribute = blocks(sizes, values)
    ds = make_dataset(labels, attribute)
    sub = imbalanced_subsample(ds, attribute="a", share=target, minority_value=1, by="class")
    check_complete_classes(ds, sub)
    assert share_reference(sub.attribute("a"), 1) <= target


def test_class_subsample_raising_keeps_complete_classes():
    labels, attribute = blocks([10] + [7] * 10, [1] + [0] * 10)
    ds = make_dataset(labels, attribute)
    sub = imbalanced_subsample(ds, attribute="a", share=0.5, minority_value=1, by="class")
    check_complete_classes(ds, sub)
    assert (sub.attribute("a") == 1).sum() == 10


@settings(max_examples=60, deadline=None)
@given(
    classes=st.lists(
        st.tuples(st.integers(1, 8), st.integers(0, 1)), min_size=2, max_size=10
    ).filter(lambda cs: 0 < sum(v for _, v in cs) < len(cs)),
    share=st.floats(0.02, 0.98),
    seed=st.integers(0, 2**16),
)
def test_class_subsample_property(classes, share, seed):
    labels, attribute = blocks([n for n, _ in classes], [v for _, v in classes])
    ds = make_dataset(labels, attribute)
    sub = imbalanced_subsample(
        ds, attribute="a", share=share, minority_value=1, by="class", seed=seed
    )
    uid = sub.uid
    assert len(np.unique(uid)) == len(uid) and set(uid.tolist()) <= set(range(len(ds)))
    check_complete_classes(ds, sub)
    kept = sub.attribute("a")
    # one side is untouched, the other keeps at least one class
    untouched = [(kept == v).sum() == (attribute == v).sum() for v in (0, 1)]
    assert any(untouched)
    assert (kept == 0).sum() > 0 and (kept == 1).sum() > 0


def test_class_subsample_needs_a_constant_attribute_per_class():
    ds = make_dataset([0, 0, 1, 1, 2, 2], [0, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="constant within each class.*class 0.*by='sample'"):
        imbalanced_subsample(ds, attribute="a", share=0.1, minority_value=1, by="class")


# -- imbalanced_subsample errors --------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(share=0.0), "share must lie in \\(0, 1\\), got 0.0"),
        (dict(share=1.0), "share must lie in \\(0, 1\\), got 1.0"),
        (dict(share=-0.5), "share must lie in \\(0, 1\\)"),
        (dict(share=1.5), "share must lie in \\(0, 1\\)"),
        (dict(by="group"), "by must be 'sample' or 'class', got 'group'"),
        (dict(attribute="b"), "unknown attribute 'b'; this dataset has: a"),
        (dict(minority_value=5), "value 5 of attribute 'a' does not occur"),
        (dict(minority_value=2), "value 2 of attribute 'a' does not occur"),  # named, absent
    ],
)
def test_subsample_errors(kwargs, message):
    ds = make_dataset([0, 1, 2, 3], [0, 1, 0, 1], attribute_value_names={"a": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=message):
        imbalanced_subsample(ds, **{"attribute": "a", "share": 0.2, **kwargs})


def test_subsample_one_value_only():
    ds = make_dataset([0, 1, 2], [1, 1, 1])
    with pytest.raises(ValueError, match="every sample has a=1: nothing to balance against"):
        imbalanced_subsample(ds, attribute="a", share=0.5)


def test_subsample_negative_minority_value_is_rejected():
    ds = make_dataset([0, 1, 2, 3], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="value -1 of attribute 'a' does not occur"):
        imbalanced_subsample(ds, attribute="a", share=0.3, minority_value=-1)

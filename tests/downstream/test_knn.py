"""KNNClassifier: the same predictions as scikit-learn's KNeighborsClassifier (vote ties included)
on data without distance ties, and the tie rule where training rows tie in distance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from fairmetric.downstream import KNNClassifier

SKLEARN_METRIC = {"l2": "euclidean", "cosine": "cosine"}


def _sklearn(k: int, metric: str) -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=k, metric=SKLEARN_METRIC[metric], algorithm="brute")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("k", [1, 4, 10])
def test_knn_equals_sklearn(digit_embeddings, metric, k):
    xtr, ytr, xte, _ = digit_embeddings
    ours = KNNClassifier(k=k, metric=metric).fit(xtr, ytr).predict(xte)
    ref = _sklearn(k, metric).fit(xtr, ytr).predict(xte)
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_knn_neighbours_equal_a_float64_reference(digit_embeddings, metric):
    xtr, ytr, xte, _ = digit_embeddings
    clf = KNNClassifier(k=5, metric=metric).fit(xtr, ytr)
    scores, ids = clf.kneighbors(xte[:50])
    a, b = xte[:50].astype(np.float64), xtr.astype(np.float64)
    if metric == "l2":
        full = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        order = np.argsort(full, axis=1)[:, :5]
    else:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        full = a @ b.T
        order = np.argsort(-full, axis=1)[:, :5]
    assert np.array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(full, order, 1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_vote_tie_goes_to_the_smallest_label(metric):
    # the query's 4 nearest: label 7 at angles/distances 1 and 3, label 3 at 2 and 4: a 2-2 tie.
    # The nearest neighbour is a 7, yet both rules give 3, the smaller label.
    angles = np.array([0.10, 0.20, 0.30, 0.40, 1.5])
    if metric == "cosine":
        xtr = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        xtr = np.stack([angles, np.zeros_like(angles)], axis=1)
    ytr = np.array([7, 3, 7, 3, 7])
    xq = np.array([[1.0, 0.0]]) if metric == "cosine" else np.array([[0.0, 0.0]])
    ours = KNNClassifier(k=4, metric=metric).fit(xtr, ytr).predict(xq)
    ref = _sklearn(4, metric).fit(xtr, ytr).predict(xq)
    assert ours.tolist() == ref.tolist() == [3]
    # a three-way tie among 0, 1, 2 at k=3 goes to 0 as well
    y3 = np.array([2, 0, 1, 2, 2])
    ours = KNNClassifier(k=3, metric=metric).fit(xtr, y3).predict(xq)
    assert ours.tolist() == _sklearn(3, metric).fit(xtr, y3).predict(xq).tolist() == [0]


def test_knn_rejects_bad_input(digit_embeddings):
    xtr, ytr, xte, _ = digit_embeddings
    with pytest.raises(ValueError, match="k=20 is larger than the training set.*at most 10"):
        KNNClassifier(k=20).fit(xtr[:10], ytr[:10])
    with pytest.raises(ValueError, match="unknown metric 'ip'"):
        KNNClassifier(metric="ip")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        KNNClassifier(k=0)
    zero = xtr.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="zero-norm.*metric='l2'"):
        KNNClassifier(metric="cosine").fit(zero, ytr)
    KNNClassifier(metric="l2").fit(zero, ytr)  # fine under l2
    bad = xte.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        KNNClassifier().fit(xtr, ytr).predict(bad)
    with pytest.raises(ValueError, match="single class"):
        KNNClassifier(k=1).fit(xtr[:5], np.zeros(5, dtype=int))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_tied_training_rows_share_the_last_slots(metric):
    # one row of label 5 nearest, then three copies of one row with labels 1, 2, 2. k=3: the
    # copies share 2 slots, 2/3 each: label 2 gets 4/3 votes, label 5 one, label 1 2/3 -> 2.
    # Taking the first two copies by index (scikit-learn, faiss) would give a 1-1-1 tie -> 1.
    xtr = np.array([[1.0, 0.05], [1.0, 0.3], [1.0, 0.3], [1.0, 0.3], [-1.0, 0.2]])
    ytr = np.array([5, 1, 2, 2, 9])
    xq = np.array([[1.0, 0.0]])
    for order in ([0, 1, 2, 3, 4], [3, 2, 1, 0, 4], [4, 2, 0, 3, 1]):
        clf = KNNClassifier(k=3, metric=metric).fit(xtr[order], ytr[order])
        assert clf.predict(xq).tolist() == [2]
        # k=2: one slot for three copies (1/3 each): label 5's single full vote wins
        assert KNNClassifier(k=2, metric=metric).fit(xtr[order], ytr[order]).predict(xq) == [5]
    assert _sklearn(3, metric).fit(xtr, ytr).predict(xq).tolist() == [1]
    scores, ids = KNNClassifier(k=3, metric=metric).fit(xtr, ytr).kneighbors(xq)
    assert ids.tolist() == [[0, 1, 2]] and scores[0, 1] == scores[0, 2]  # tied rows by index

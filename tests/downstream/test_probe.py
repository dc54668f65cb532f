"""LinearProbe: equal to scikit-learn's (standardised) logistic regression, validated input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fairmetric.downstream import LinearProbe


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1, user_api="blas"):  # multi-threaded OpenBLAS after faiss is slow
        yield


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_probe_equals_standardised_sklearn_logistic_regression(digit_embeddings, C):
    xtr, ytr, xte, yte = digit_embeddings
    probe = LinearProbe(C=C).fit(xtr, ytr)
    # the reference, spelled out: standardise with the training statistics, then fit
    mean, std = xtr.astype(np.float64).mean(0), xtr.astype(np.float64).std(0)
    ref = LogisticRegression(C=C, max_iter=1000).fit((xtr - mean) / std, ytr)
    ref_pred = ref.predict((xte - mean) / std)
    pred = probe.predict(xte)
    assert np.array_equal(pred, ref_pred)
    np.testing.assert_allclose(
        probe.predict_proba(xte), ref.predict_proba((xte - mean) / std), atol=1e-4
    )
    assert set(pred) <= set(ytr)  # labels come back in the caller's codes (5..14)
    assert probe.score(xte, yte) == pytest.approx(np.mean(ref_pred == yte))
    assert probe.score(xte, yte) > 0.7  # chance is 0.1
    assert probe.converged_


def test_probe_without_standardisation_is_plain_logistic_regression(digit_embeddings):
    xtr, ytr, xte, _ = digit_embeddings
    probe = LinearProbe(C=0.3, standardize=False).fit(xtr, ytr)
    ref = LogisticRegression(C=0.3, max_iter=1000).fit(xtr, ytr)
    assert np.array_equal(probe.predict(xte), ref.predict(xte))


def test_standardisation_makes_the_probe_scale_invariant(digit_embeddings):
    # unit-norm embeddings have tiny per-dimension scales: a fixed C then over-regularises,
    # unless the probe standardises first
    xtr, ytr, xte, yte = digit_embeddings
    scale = 1e-3
    std_acc = LinearProbe().fit(xtr * scale, ytr).score(xte * scale, yte)
    raw_acc = LinearProbe(standardize=False).fit(xtr * scale, ytr).score(xte * scale, yte)
    assert std_acc == pytest.approx(LinearProbe().fit(xtr, ytr).score(xte, yte), abs=0.01)
    assert raw_acc < std_acc - 0.3
    scaler = StandardScaler().fit(xtr * scale)
    assert np.allclose(scaler.mean_, xtr.mean(0) * scale, atol=1e-6)


def test_probe_warns_when_it_does_not_converge(digit_embeddings):
    xtr, ytr, _, _ = digit_embeddings
    with pytest.warns(UserWarning, match="did not converge.*max_iter"):
        probe = LinearProbe(C=100.0, max_iter=2).fit(xtr, ytr)
    assert not probe.converged_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"C": 0}, "C must be a positive"),
        ({"max_iter": 0}, "max_iter"),
        ({"class_weight": "auto"}, "class_weight"),
    ],
)
def test_probe_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearProbe(**kwargs)


def test_probe_rejects_bad_data(digit_embeddings):
    xtr, ytr, xte, _ = digit_embeddings
    bad = xtr.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) with NaN or Inf.*\[3\].*drop_invalid"):
        LinearProbe().fit(bad, ytr)
    with pytest.raises(ValueError, match="1000 rows but y has 999 entries"):
        LinearProbe().fit(xtr, ytr[:-1])
    with pytest.raises(ValueError, match="single class.*at least two"):
        LinearProbe().fit(xtr, np.full(len(xtr), 7))
    with pytest.raises(ValueError, match="not fitted yet"):
        LinearProbe().predict(xte)
    probe = LinearProbe().fit(xtr, ytr)
    with pytest.raises(ValueError, match="4 columns but the classifier was fitted on 16"):
        probe.predict(xte[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        probe.predict(xte[0])

"""Verification curves against scikit-learn and a loop; every plot renders, edge cases included."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from fairmetric.report.plots import figure_to_data_uri
from fairmetric.report.verification_plots import (
    det_plot,
    fmr_heatmap,
    identification_error_heatmap,
    roc_det_curves,
    roc_plot,
    score_distribution_plot,
)

# a warning while drawing (log of 0, empty histogram, legend placement) fails the test
pytestmark = pytest.mark.filterwarnings("error")

PNG_URI = "data:image/png;base64,"


def _png(fig: Figure) -> bytes:
    assert isinstance(fig, Figure)
    uri = figure_to_data_uri(fig)
    assert uri.startswith(PNG_URI)
    data = base64.b64decode(uri[len(PNG_URI) :])
    assert data.startswith(b"\x89PNG")
    return data


def _tied(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    """Scores rounded to one decimal: many ties within and across the two arrays."""
    return np.round(rng.normal(shift, 1.0, n), 1)


def _loop(genuine: np.ndarray, impostor: np.ndarray) -> tuple[list, list, list]:
    thresholds = sorted(set(genuine.tolist()) | set(impostor.tolist()), reverse=True)
    fmr = [sum(s >= t for s in impostor) / len(impostor) for t in thresholds]
    fnmr = [sum(s < t for s in genuine) / len(genuine) for t in thresholds]
    return thresholds, fmr, fnmr


# ----------------------------------------------------------------------------- curves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curve_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    genuine, impostor = _tied(rng, 300, 1.0), _tied(rng, 900, -1.0)
    curve = roc_det_curves(genuine, impostor, max_points=10_000)
    y = np.r_[np.ones(genuine.size), np.zeros(impostor.size)]
    fpr, tpr, thr = roc_curve(y, np.r_[genuine, impostor], drop_intermediate=False)
    # scikit-learn starts with an extra threshold above every score (FPR 0, TPR 0)
    np.testing.assert_array_equal(curve["thresholds"], thr[1:])
    np.testing.assert_allclose(curve["fmr"], fpr[1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve["fnmr"], 1 - tpr[1:], rtol=0, atol=1e-12)
    assert (curve["n_genuine"], curve["n_impostor"]) == (300, 900)


@pytest.mark.parametrize(
    ("genuine", "impostor"),
    [
        ([0.9, 0.5, 0.5, 0.2], [0.5, 0.1, 0.1, 0.7, 0.9]),
        ([0.3], [0.3]),
        ([1.0, 1.0], [1.0, 1.0, 1.0]),
        ([0.0], [1.0]),
        ([2.0, -1.0], [0.5]),
    ],
)
def test_curve_matches_a_loop(genuine, impostor):
    g, i = np.array(genuine), np.array(impostor)
    curve = roc_det_curves(g, i)
    thresholds, fmr, fnmr = _loop(g, i)
    np.testing.assert_array_equal(curve["thresholds"], thresholds)
    np.testing.assert_allclose(curve["fmr"], fmr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve["fnmr"], fnmr, rtol=0, atol=1e-12)


def test_thinning_keeps_extremes_monotone_and_exact_points():
    rng = np.random.default_rng(3)
    genuine, impostor = rng.normal(1, 1, 4000), rng.normal(-1, 1, 20000)
    full = roc_det_curves(genuine, impostor, max_points=10**6)
    thin = roc_det_curves(genuine, impostor, max_points=300)
    assert 2 <= thin["thresholds"].size <= 300 < full["thresholds"].size
    for key in ("thresholds", "fmr", "fnmr"):
        assert thin[key][0] == full[key][0] and thin[key][-1] == full[key][-1]
    assert (thin["fmr"][-1], thin["fnmr"][-1]) == (1.0, 0.0)
    assert (np.diff(thin["thresholds"]) < 0).all()
    assert (np.diff(thin["fmr"]) >= 0).all() and (np.diff(thin["fnmr"]) <= 0).all()
    # every kept point is a point of the exact curve
    at = np.searchsorted(-full["thresholds"], -thin["thresholds"])
    np.testing.assert_array_equal(full["fmr"][at], thin["fmr"])
    np.testing.assert_array_equal(full["fnmr"][at], thin["fnmr"])
    # the low-FMR tail, which a log axis spreads out, keeps points
    assert (thin["fmr"] < 1e-3).sum() >= 10
    assert roc_det_curves(genuine, impostor, max_points=2)["thresholds"].size == 2


def test_empty_sides_give_empty_curves():
    for genuine, impostor in (([], [0.1]), ([0.1], []), ([], [])):
        curve = roc_det_curves(np.array(genuine), np.array(impostor))
        assert curve["thresholds"].size == curve["fmr"].size == curve["fnmr"].size == 0
        assert (curve["n_genuine"], curve["n_impostor"]) == (len(genuine), len(impostor))


def test_curve_inputs_are_validated():
    with pytest.raises(ValueError, match="genuine_scores must be 1-D"):
        roc_det_curves(np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="impostor_scores has 1 non-finite"):
        roc_det_curves(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="max_points"):
        roc_det_curves(np.zeros(2), np.zeros(2), max_points=1)


# ----------------------------------------------------------------------------- plots


@pytest.fixture(scope="module")
def curves() -> dict[str, dict]:
    rng = np.random.default_rng(0)
    return {
        "light": roc_det_curves(rng.normal(1.5, 1, 400), rng.normal(-1, 1, 4000)),
        "dark $x$": roc_det_curves(rng.normal(1.0, 1, 300), rng.normal(-0.5, 1, 3000)),
    }


EDGE_CURVES = {
    "no genuine": roc_det_curves(np.array([]), np.array([0.2, 0.4])),
    "no impostor": roc_det_curves(np.array([0.2]), np.array([])),
    "single point": roc_det_curves(np.array([0.5]), np.array([0.5])),
    "identical": roc_det_curves(np.full(5, 0.3), np.full(7, 0.3)),
    "separable": roc_det_curves(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.3])),
    # no pair counts given: the log floor comes from the rates
    "bare": {"fmr": np.array([0.0, 0.5, 1.0]), "fnmr": np.array([1.0, 0.0, 0.0])},
}


@pytest.mark.parametrize("plot", [det_plot, roc_plot])
def test_rate_plots_render(plot, curves):
    fig = plot(curves, title="test", threshold=0.5)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "light (400 genuine, 4,000 impostor pairs)"
    assert fig.axes[0].get_xscale() == "log"
    assert fig.axes[0].get_yscale() == ("log" if plot is det_plot else "linear")
    assert _png(fig) == _png(plot(curves, title="test", threshold=0.5))  # deterministic


@pytest.mark.parametrize(
    ("plot", "threshold"), [(det_plot, None), (det_plot, 10.0), (roc_plot, 0.3), (roc_plot, -10.0)]
)
def test_rate_plots_edge_cases(plot, threshold):
    fig = plot(EDGE_CURVES, title="edge", threshold=threshold, target_fmrs=(1e-2,))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "no genuine: no genuine pairs, not drawn" in labels
    assert "no impostor: no impostor pairs, not drawn" in labels
    assert "rates of 0 drawn at 0.1/n" in fig.get_supxlabel()
    _png(fig)


@pytest.mark.parametrize("plot", [det_plot, roc_plot])
def test_rate_plots_without_curves(plot):
    _png(plot({}, title="none"))
    _png(plot({"only empty": EDGE_CURVES["no genuine"]}, title="empty", target_fmrs=()))


def test_operating_point_is_the_rates_at_the_threshold():
    genuine, impostor = np.array([0.9, 0.6, 0.4]), np.array([0.7, 0.5, 0.2, 0.1])
    curve = roc_det_curves(genuine, impostor)
    for threshold, fmr, fnmr in ((0.55, 1 / 4, 1 / 3), (0.95, 0.0, 1.0), (0.0, 1.0, 0.0)):
        fig = det_plot({"g": curve}, threshold=threshold)
        (dot,) = [ln for ln in fig.axes[0].lines if ln.get_markeredgecolor() == "black"]
        # zero rates sit at the floor 0.1/n, a decade below one error in n pairs
        expected = (max(fmr, 0.1 / 4), max(fnmr, 0.1 / 3))
        assert (dot.get_xdata()[0], dot.get_ydata()[0]) == pytest.approx(expected)


def test_a_thinned_curve_keeps_the_operating_point_of_kept_thresholds():
    rng = np.random.default_rng(3)
    genuine, impostor = rng.normal(1, 1, 3000), rng.normal(-1, 1, 30000)
    tau = float(np.quantile(impostor, 0.99))
    full = roc_det_curves(genuine, impostor, max_points=10**9)
    thin = roc_det_curves(genuine, impostor, max_points=50, keep_thresholds=[tau])
    assert len(thin["fmr"]) <= 51
    exact = (float((impostor >= tau).mean()), float((genuine < tau).mean()))
    i = np.flatnonzero(thin["thresholds"] >= tau)[-1]
    assert (thin["fmr"][i], thin["fnmr"][i]) == exact
    j = np.flatnonzero(full["thresholds"] >= tau)[-1]
    assert (full["fmr"][j], full["fnmr"][j]) == exact
    fig = det_plot({"g": thin}, threshold=tau)
    (dot,) = [ln for ln in fig.axes[0].lines if ln.get_markeredgecolor() == "black"]
    assert (dot.get_xdata()[0], dot.get_ydata()[0]) == pytest.approx(exact, rel=0, abs=0)
    # without it, the thinned curve's nearest point is off the exact rates
    plain = roc_det_curves(genuine, impostor, max_points=50)
    k = np.flatnonzero(plain["thresholds"] >= tau)[-1]
    assert (plain["fmr"][k], plain["fnmr"][k]) != exact


def test_rate_plot_inputs_are_validated(curves):
    with pytest.raises(ValueError, match="target_fmrs"):
        det_plot(curves, target_fmrs=(0.0,))
    with pytest.raises(ValueError, match=r"curves\['g'\] has no 'fnmr'"):
        roc_plot({"g": {"fmr": np.zeros(2)}})


def test_score_distribution_plot_renders():
    rng = np.random.default_rng(1)
    scores = {
        "light": (rng.normal(1, 1, 200), rng.normal(-1, 1, 2000)),
        "dark": (rng.normal(0.5, 1, 100), rng.normal(-0.5, 1, 1000)),
    }
    fig = score_distribution_plot(scores, threshold=0.2)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()  # shared bins and axis
    assert _png(fig) == _png(score_distribution_plot(scores, threshold=0.2))


@pytest.mark.parametrize("threshold", [None, 0.3, 5.0])
def test_score_distribution_plot_edge_cases(threshold):
    scores = {
        "empty": (np.array([]), np.array([])),
        "no impostor": (np.array([0.1, 0.2]), np.array([])),
        "single": (np.array([0.3]), np.array([0.3])),
        "identical": (np.full(4, 0.3), np.full(4, 0.3)),
    }
    fig = score_distribution_plot(scores, threshold=threshold)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["genuine (2)", "no impostor pairs"]
    _png(fig)
    _png(score_distribution_plot({"identical": scores["identical"]}, threshold=threshold))
    _png(score_distribution_plot({}))


def _cell_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_fmr_heatmap_renders_zeros_and_nan():
    m = np.array([[1e-3, 0.0, 2e-5], [np.nan, 4e-4, 1e-4]])
    fig = fmr_heatmap(m, ["a", "b"], ["a", "b", "c $d$"], title="FMR")
    assert _cell_texts(fig) == ["0.001", "0", "2e-05", "n/a", "0.0004", "0.0001"]
    assert _png(fig) == _png(fmr_heatmap(m, ["a", "b"], ["a", "b", "c $d$"], title="FMR"))


@pytest.mark.parametrize(
    "matrix",
    [
        np.zeros((2, 2)),
        np.full((2, 2), np.nan),
        np.array([[0.01]]),
        np.array([[0.01, 0.01], [0.0, np.nan]]),
    ],
)
def test_fmr_heatmap_edge_cases(matrix):
    names = ["a", "b"][: matrix.shape[0]]
    _png(fmr_heatmap(matrix, names, names))


def test_identification_error_heatmap_renders():
    m = np.array([[0.05, 0.0], [0.125, np.nan]])
    fig = identification_error_heatmap(m, ["a", "b"], ["a", "b"])
    assert _cell_texts(fig) == ["0.05", "0", "0.12", "n/a"]
    assert _png(fig) == _png(identification_error_heatmap(m, ["a", "b"], ["a", "b"]))
    for matrix in (np.zeros((2, 2)), np.full((1, 1), np.nan), np.zeros((0, 0))):
        names = ["a", "b"][: matrix.shape[0]]
        _png(identification_error_heatmap(matrix, names, names))
    _png(fmr_heatmap(np.zeros((0, 0)), [], []))


def test_heatmap_inputs_are_validated():
    with pytest.raises(ValueError, match="2 row_names and 1 col_names"):
        fmr_heatmap(np.zeros((2, 2)), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="2-D"):
        identification_error_heatmap(np.zeros(3), ["a"], ["a"])
    with pytest.raises(ValueError, match=">= 0"):
        fmr_heatmap(np.array([[-0.1]]), ["a"], ["a"])

"""Plots of a face-verification fairness audit: ROC, DET, score distributions, error heat maps.

Pure functions on arrays. :func:`roc_det_curves` computes one group's exact ROC from its genuine
(same identity) and impostor (different identities) pair scores; the plot functions draw what it
returns, or score arrays, or matrices of rates, on bare :class:`matplotlib.figure.Figure` objects
with the Agg canvas, as :mod:`fairmetric.report.plots` does (no ``pyplot``: there is no global
figure registry, so nothing to close); :func:`~fairmetric.report.plots.figure_to_data_uri` renders
them as PNG for the HTML report.

Rates of 0 cannot be drawn on a log axis: they are drawn at the floor ``1 / (n + 1)``, ``n`` the
group's pair count (half the smallest non-zero rate when the count is not given), and the figure
says so in a footnote. Groups without pairs are not drawn; the legend lists them with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairmetric.report.plots import _label, _new_figure, _palette

__all__ = [
    "det_plot",
    "fmr_heatmap",
    "identification_error_heatmap",
    "roc_det_curves",
    "roc_plot",
    "score_distribution_plot",
]

_GENUINE = "#4c72b0"
_IMPOSTOR = "#dd8452"
_FLOOR_NOTE = "rates of 0 drawn at 0.1/n, a decade below one error in n pairs"


# ----------------------------------------------------------------------------- curves


def _scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite scores")
    return arr


def roc_det_curves(
    genuine_scores: np.ndarray,
    impostor_scores: np.ndarray,
    max_points: int = 2000,
    keep_thresholds: Sequence[float] = (),
) -> dict[str, Any]:
    r"""The exact ROC of one group, as false match and false non-match rates per threshold.

    A pair matches when its score is at least the threshold :math:`\tau`. For every distinct
    score :math:`\tau` of the group (genuine or impostor)

    .. math::

        \mathrm{FMR}(\tau) = \frac{|\{s \in I : s \ge \tau\}|}{|I|}, \qquad
        \mathrm{FNMR}(\tau) = \frac{|\{s \in G : s < \tau\}|}{|G|},

    with :math:`G` the genuine and :math:`I` the impostor scores; ``1 - FNMR`` is the true match
    rate. Two sorts and two ``searchsorted`` calls: :math:`O((n_g + n_i)\log(n_g + n_i))`.

    Curves with more than ``max_points`` points are thinned to at most ``max_points`` of their
    own points, spread evenly along the curve's length in log-log (DET) coordinates: the first
    (highest threshold) and last (lowest threshold, FMR = 1, FNMR = 0) points are always kept,
    and any subset of a monotone curve is monotone. The operating point at each of
    ``keep_thresholds`` (the point of the smallest curve threshold at or above it) is kept too,
    so a plot marks it exactly.

    Args:
        genuine_scores: 1-D similarity scores of the group's genuine pairs.
        impostor_scores: 1-D similarity scores of the group's impostor pairs.
        max_points: the most points returned (at least 2; plus one per kept threshold).
        keep_thresholds: thresholds whose operating points survive the thinning.

    Returns:
        ``{"thresholds", "fmr", "fnmr"}`` float arrays sorted by threshold descending (FMR
        non-decreasing, FNMR non-increasing) and ``"n_genuine"``, ``"n_impostor"``. The arrays
        are empty when either score array is (a rate over no pairs is undefined).

    Raises:
        ValueError: a score array is not 1-D or holds NaN/inf, or ``max_points < 2``.
    """
    genuine = np.sort(_scores(genuine_scores, "genuine_scores"))
    impostor = np.sort(_scores(impostor_scores, "impostor_scores"))
    if int(max_points) != max_points or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    n_g, n_i = genuine.size, impostor.size
    out: dict[str, Any] = {"n_genuine": n_g, "n_impostor": n_i}
    if n_g == 0 or n_i == 0:
        empty = np.empty(0, dtype=np.float64)
        return {"thresholds": empty, "fmr": empty.copy(), "fnmr": empty.copy(), **out}
    thresholds = np.unique(np.concatenate([genuine, impostor]))[::-1]
    fmr = (n_i - np.searchsorted(impostor, thresholds, side="left")) / n_i
    fnmr = np.searchsorted(genuine, thresholds, side="left") / n_g
    if thresholds.size > max_points:
        keep = _thin(fmr, fnmr, 1.0 / (n_i + 1), 1.0 / (n_g + 1), int(max_points))
        marks = [np.flatnonzero(thresholds >= float(t)) for t in keep_thresholds]
        keep = np.union1d(keep, [m[-1] for m in marks if m.size]).astype(np.int64)
        thresholds, fmr, fnmr = thresholds[keep], fmr[keep], fnmr[keep]
    return {"thresholds": thresholds, "fmr": fmr, "fnmr": fnmr, **out}


def _thin(
    fmr: np.ndarray, fnmr: np.ndarray, fmr_floor: float, fnmr_floor: float, max_points: int
) -> np.ndarray:
    """Indices of at most ``max_points`` points spread by arc length in log-log coordinates."""
    x = np.log10(np.maximum(fmr, fmr_floor))
    y = np.log10(np.maximum(fnmr, fnmr_floor))
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, length[-1], max_points)
    idx = np.minimum(np.searchsorted(length, targets, side="left"), fmr.size - 1)
    idx[0], idx[-1] = 0, fmr.size - 1
    return np.unique(idx)


# ----------------------------------------------------------------------------- ROC / DET


def _count(curve: Mapping[str, Any], key: str) -> int | None:
    n = curve.get(key)
    return None if n is None else int(n)


def _floor(rates: np.ndarray, n: int | None) -> float:
    """Where a rate of 0 is drawn on a log axis: a decade below the smallest non-zero rate
    ``1/n`` (at ``1/(n+1)`` zero and one error would look the same)."""
    if n is not None and n > 0:
        return 0.1 / n
    positive = rates[rates > 0]
    return float(positive.min()) / 10 if positive.size else 1e-6


def _rate_label(t: float) -> str:
    """``1e-3`` for 0.001, as the report's keys (``fmr@1e-3``) write it."""
    mantissa, exponent = f"{t:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _curve_arrays(g: str, curve: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        fmr = np.asarray(curve["fmr"], dtype=np.float64).ravel()
        fnmr = np.asarray(curve["fnmr"], dtype=np.float64).ravel()
    except KeyError as e:
        raise ValueError(f"curves[{g!r}] has no {e.args[0]!r} array") from None
    thr = curve.get("thresholds")
    thr = np.full(fmr.size, np.nan) if thr is None else np.asarray(thr, dtype=np.float64).ravel()
    if not fmr.size == fnmr.size == thr.size:
        raise ValueError(
            f"curves[{g!r}]: fmr, fnmr and thresholds differ in length "
            f"({fmr.size}, {fnmr.size}, {thr.size})"
        )
    return thr, fmr, fnmr


def _legend_name(g: str, curve: Mapping[str, Any]) -> str:
    n_g, n_i = _count(curve, "n_genuine"), _count(curve, "n_impostor")
    if n_g is None and n_i is None:
        return _label(g)
    parts = [f"{n:,} {kind}" for n, kind in ((n_g, "genuine"), (n_i, "impostor")) if n is not None]
    return _label(f"{g} ({', '.join(parts)} pairs)")


def _skip_reason(curve: Mapping[str, Any], size: int) -> str | None:
    if _count(curve, "n_genuine") == 0:
        return "no genuine pairs"
    if _count(curve, "n_impostor") == 0:
        return "no impostor pairs"
    return "no points" if size == 0 else None


def _at_threshold(
    thr: np.ndarray, fmr: np.ndarray, fnmr: np.ndarray, threshold: float
) -> tuple[float, float] | None:
    """(FMR, FNMR) at ``threshold``: the point of the smallest curve threshold >= it."""
    if np.isnan(thr).all():
        return None
    above = np.flatnonzero(thr >= threshold)
    if above.size == 0:  # above every score: nothing matches
        return 0.0, 1.0
    i = above[-1]
    return float(fmr[i]), float(fnmr[i])


def _rate_plot(
    curves: Mapping[str, Mapping[str, Any]],
    *,
    title: str,
    target_fmrs: Sequence[float],
    threshold: float | None,
    tmr: bool,
) -> Figure:
    targets = [float(t) for t in target_fmrs]
    if any(not 0 < t <= 1 for t in targets):
        raise ValueError(f"target_fmrs must lie in (0, 1], got {tuple(target_fmrs)}")
    fig = _new_figure(5.5, 4.2)
    ax = fig.add_subplot()
    palette = _palette(max(len(curves), 1))
    handles: list[Line2D] = []
    labels: list[str] = []
    clipped = False
    lows = [*targets, 0.1]  # the FMR axis's
    y_lows = [0.1]  # the FNMR axis's (DET)
    for colour, (g, curve) in zip(palette, curves.items()):
        thr, fmr, fnmr = _curve_arrays(g, curve)
        reason = _skip_reason(curve, fmr.size)
        if reason is not None:
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(_label(f"{g}: {reason}, not drawn"))
            continue
        fmr_floor = _floor(fmr, _count(curve, "n_impostor"))
        fnmr_floor = _floor(fnmr, _count(curve, "n_genuine"))
        clipped |= bool((fmr <= 0).any()) or (not tmr and bool((fnmr <= 0).any()))
        x = np.maximum(fmr, fmr_floor)
        y = 1.0 - fnmr if tmr else np.maximum(fnmr, fnmr_floor)
        lows.append(float(x.min()))
        if not tmr:
            y_lows.append(float(y.min()))
        marker = "o" if x.size == 1 else None
        (line,) = ax.plot(x, y, color=colour, linewidth=1.4, marker=marker, markersize=4)
        handles.append(line)
        labels.append(_legend_name(g, curve))
        if threshold is not None:
            point = _at_threshold(thr, fmr, fnmr, float(threshold))
            if point is not None:
                px = max(point[0], fmr_floor)
                py = 1.0 - point[1] if tmr else max(point[1], fnmr_floor)
                clipped |= point[0] <= 0 or (not tmr and point[1] <= 0)
                ax.plot([px], [py], marker="o", color=colour, markeredgecolor="black", zorder=3)
    for t in targets:
        ax.axvline(t, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(
            f"FMR {_rate_label(t)}",
            (t, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=7,
            color="0.3",
        )
    low = 10 ** np.floor(np.log10(min(lows)) - 0.05)
    y_low = 10 ** np.floor(np.log10(min(y_lows)) - 0.05)
    ax.set_xscale("log")
    ax.set_xlim(low, 1.0)
    ax.set_xlabel("false match rate (FMR)", fontsize=8)
    if tmr:
        ax.set_ylim(0.0, 1.02)
        ax.set_ylabel("true match rate (TMR = 1 − FNMR)", fontsize=8)
    else:
        ax.set_yscale("log")
        ax.set_ylim(y_low, 1.0)
        ax.set_ylabel("false non-match rate (FNMR)", fontsize=8)
    ax.grid(True, which="major", color="0.9", linewidth=0.6)
    ax.tick_params(labelsize=8)
    ax.set_title(_label(title), fontsize=9)
    if not curves:
        ax.text(0.5, 0.5, "no groups", transform=ax.transAxes, ha="center", color="0.4")
    if handles:
        # not "best": it warns when placing the legend among many points is slow
        loc = "lower right" if tmr else "lower left"
        ax.legend(handles, labels, fontsize=7, frameon=False, loc=loc)
    notes = []
    if threshold is not None:
        notes.append(f"dots: operating point at threshold {float(threshold):g}")
    if clipped:
        notes.append(_FLOOR_NOTE)
    if notes:
        fig.supxlabel("; ".join(notes), fontsize=7, color="0.3")
    return fig


def det_plot(
    curves: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "DET: false non-match rate against false match rate",
    target_fmrs: Sequence[float] = (1e-3, 1e-4),
    threshold: float | None = None,
) -> Figure:
    """The DET curve (FNMR against FMR, both log axes) of each group.

    Args:
        curves: per group, a :func:`roc_det_curves` result: ``fmr`` and ``fnmr`` arrays, and
            optionally ``thresholds`` (needed to mark ``threshold``), ``n_genuine`` and
            ``n_impostor`` (shown in the legend; they also set the log floor ``1/(n+1)``).
        title: the figure's title.
        target_fmrs: FMRs marked by dotted vertical lines, each in (0, 1].
        threshold: the global decision threshold; each group's operating point there is marked
            (on the points of the curve: exact when the curve kept that threshold's point,
            :func:`roc_det_curves`'s ``keep_thresholds``).

    Returns:
        The figure; :func:`~fairmetric.report.plots.figure_to_data_uri` renders it.
    """
    return _rate_plot(curves, title=title, target_fmrs=target_fmrs, threshold=threshold, tmr=False)


def roc_plot(
    curves: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "ROC: true match rate against false match rate",
    target_fmrs: Sequence[float] = (1e-3, 1e-4),
    threshold: float | None = None,
) -> Figure:
    """The ROC curve (TMR = 1 − FNMR, linear, against FMR, log axis) of each group.

    Arguments and return value as :func:`det_plot`.
    """
    return _rate_plot(curves, title=title, target_fmrs=target_fmrs, threshold=threshold, tmr=True)


# ----------------------------------------------------------------------------- distributions


def score_distribution_plot(
    scores_by_group: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    threshold: float | None = None,
    bins: int = 50,
    title: str = "genuine and impostor score distributions",
) -> Figure:
    """Histograms (densities) of each group's genuine and impostor scores, one panel per group.

    All panels share one x axis and one set of ``bins`` bins spanning every group's scores, so
    that the groups compare at a glance; an empty score array is noted in its panel's legend and
    not drawn.

    Args:
        scores_by_group: per group, ``(genuine_scores, impostor_scores)`` 1-D arrays.
        threshold: the global decision threshold, drawn as a dashed vertical line.
        bins: the number of histogram bins (at least 1).
        title: the figure's title.
    """
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    groups = {
        g: (_scores(gen, f"scores_by_group[{g!r}][0]"), _scores(imp, f"scores_by_group[{g!r}][1]"))
        for g, (gen, imp) in scores_by_group.items()
    }
    every = [a for pair in groups.values() for a in pair if a.size]
    if threshold is not None:
        every.append(np.array([float(threshold)]))
    lo, hi = (min(a.min() for a in every), max(a.max() for a in every)) if every else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    n = max(len(groups), 1)
    fig = _new_figure(5.5, 0.5 + 1.4 * n)
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    for ax, (g, (gen, imp)) in zip(axes, groups.items()):
        handles, labels = [], []
        for scores, kind, colour in ((gen, "genuine", _GENUINE), (imp, "impostor", _IMPOSTOR)):
            if scores.size == 0:
                handles.append(Line2D([], [], linestyle="none"))
                labels.append(f"no {kind} pairs")
                continue
            density, _ = np.histogram(scores, bins=edges, density=True)
            handles.append(ax.stairs(density, edges, fill=True, alpha=0.45, color=colour))
            labels.append(f"{kind} ({scores.size:,})")
        if threshold is not None:
            ax.axvline(float(threshold), color="0.2", linestyle="--", linewidth=1)
        ax.set_ylabel("density", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_title(_label(g), fontsize=8, loc="left")
        ax.legend(handles, labels, fontsize=6, frameon=False, loc="upper left")
    if not groups:
        axes[0].text(0.5, 0.5, "no groups", transform=axes[0].transAxes, ha="center", color="0.4")
        axes[0].set_yticks([])
    axes[-1].set_xlim(lo, hi)
    axes[-1].set_xlabel("similarity score", fontsize=8)
    fig.suptitle(_label(title), fontsize=9)
    if threshold is not None:
        fig.supxlabel(
            f"dashed line: global threshold {float(threshold):g}", fontsize=7, color="0.3"
        )
    return fig


# ----------------------------------------------------------------------------- heat maps


def _matrix(matrix: Any, row_names: Sequence[Any], col_names: Sequence[Any]) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    if m.shape != (len(row_names), len(col_names)):
        raise ValueError(
            f"matrix has shape {m.shape} but there are {len(row_names)} row_names and "
            f"{len(col_names)} col_names"
        )
    if np.isinf(m).any() or (m < 0).any():
        raise ValueError("matrix must hold rates >= 0 (NaN for no pairs)")
    return m


def _format(v: float) -> str:
    return "0" if v == 0 else f"{v:.2g}"


def _heatmap(
    m: np.ndarray,
    row_names: Sequence[Any],
    col_names: Sequence[Any],
    *,
    title: str,
    norm: Normalize,
    shown: np.ndarray,
    colour_label: str,
    row_label: str,
    col_label: str,
    note: str,
) -> Figure:
    """Annotated cells; ``shown`` marks the cells coloured by ``norm``, the rest are grey."""
    n_rows, n_cols = m.shape
    fig = _new_figure(max(3.8, 1.8 + 0.65 * n_cols), max(2.6, 1.5 + 0.4 * n_rows))
    ax: Axes = fig.add_subplot()
    ax.set_title(_label(title), fontsize=9)
    if m.size == 0:
        ax.text(0.5, 0.5, "no groups", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    cmap = colormaps["viridis"].with_extremes(bad=(0, 0, 0, 0))  # masked: see-through
    finite = np.isfinite(m)
    grey = finite & ~shown
    if grey.any():
        cells = np.ma.masked_array(np.zeros_like(m), mask=~grey)
        ax.imshow(cells, cmap=ListedColormap(["0.85"]), vmin=0, vmax=1, aspect="auto")
    if shown.any():
        image = ax.imshow(np.ma.masked_array(m, mask=~shown), cmap=cmap, norm=norm, aspect="auto")
        bar = fig.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label(colour_label, fontsize=7)
        bar.ax.tick_params(labelsize=7)
    for i in range(n_rows):
        for j in range(n_cols):
            v = m[i, j]
            if not np.isfinite(v):
                text, colour = "n/a", "0.5"
            else:
                text, colour = _format(v), "black"
                if shown[i, j]:
                    r, g, b, _ = cmap(norm(v))
                    colour = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(
        np.arange(n_cols), [_label(c) for c in col_names], fontsize=7, rotation=30, ha="right"
    )
    ax.set_yticks(np.arange(n_rows), [_label(r) for r in row_names], fontsize=7)
    ax.set_xlabel(col_label, fontsize=8)
    ax.set_ylabel(row_label, fontsize=8)
    fig.supxlabel(note, fontsize=7, color="0.3")
    return fig


def fmr_heatmap(
    matrix: np.ndarray,
    row_names: Sequence[Any],
    col_names: Sequence[Any],
    *,
    title: str = "FMR at the global threshold",
) -> Figure:
    """FMR at the global threshold per (probe group, impostor group), log colour scale.

    ``matrix[i, j]`` is the share of impostor pairs between a probe of group ``row_names[i]``
    and an identity of group ``col_names[j]`` that match. Every cell is annotated with its value;
    cells of 0 (off the log scale) are grey and read ``0``; NaN cells (no such pairs) are blank
    and read ``n/a``.

    Raises:
        ValueError: ``matrix`` is not 2-D, does not match the names, or holds negative or
            infinite values.
    """
    m = _matrix(matrix, row_names, col_names)
    shown = np.isfinite(m) & (m > 0)
    positive = m[shown]
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = float(positive.min()) if positive.size else 0.1
    if vmin >= vmax:
        vmin = vmax / 10
    return _heatmap(
        m,
        row_names,
        col_names,
        title=title,
        norm=LogNorm(vmin=vmin, vmax=vmax),
        shown=shown,
        colour_label="FMR (log scale)",
        row_label="probe group",
        col_label="impostor group",
        note="grey: FMR 0 (off the log scale); n/a: no pairs",
    )


def identification_error_heatmap(
    matrix: np.ndarray,
    row_names: Sequence[Any],
    col_names: Sequence[Any],
    *,
    title: str = "rank-1 identification errors",
) -> Figure:
    """Rank-1 identification errors per (probe group, group of the wrongly returned identity).

    ``matrix[i, j]`` is the share of probes of group ``row_names[i]`` whose rank-1 identity is a
    wrong one of group ``col_names[j]``; linear colour scale from 0, every cell annotated, NaN
    cells (no probes) blank and read ``n/a``.

    Raises:
        ValueError: as :func:`fmr_heatmap`.
    """
    m = _matrix(matrix, row_names, col_names)
    shown = np.isfinite(m)
    vmax = float(m[shown].max()) if shown.any() else 1.0
    return _heatmap(
        m,
        row_names,
        col_names,
        title=title,
        norm=Normalize(vmin=0.0, vmax=vmax if vmax > 0 else 1.0),
        shown=shown,
        colour_label="share of probes",
        row_label="probe group",
        col_label="group of the wrongly returned identity",
        note="n/a: no probes",
    )

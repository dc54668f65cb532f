"""Plots of an audit report: per-group values with intervals, 2-D projection, homophily.

Figures are drawn on bare :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``: nothing touches the global backend or figure registry, so there is nothing to
close and rendering is safe on a headless machine or inside a notebook.
"""

from __future__ import annotations

import base64
import inspect
import io
import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fairmetric.report.frame import GroupMetric

__all__ = ["figure_to_data_uri", "plot_group_bars", "plot_homophily", "plot_projection"]

_DPI = 150
# boxplot's ``vert`` is deprecated from matplotlib 3.10 in favour of ``orientation``
_HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"}
    if "orientation" in inspect.signature(Axes.boxplot).parameters
    else {"vert": False}
)
_BLUE = "#4c72b0"


def direction(metric: GroupMetric) -> str:
    """``"higher is better"`` or ``"lower is better"``."""
    return "higher is better" if metric.higher_is_better else "lower is better"


def _label(text: Any) -> str:
    """A user string safe for matplotlib text: ``$`` would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_to_data_uri(fig: Figure, *, dpi: int = _DPI) -> str:
    """Render ``fig`` as PNG and return a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _height(n_rows: int) -> float:
    return 0.6 + 0.24 * max(n_rows, 1)


def plot_group_bars(metric: GroupMetric) -> Figure:
    """Each group's value with its interval, one panel per attribute.

    Bars start at 0 when every value is non-negative; a metric with negative values (uniformity
    is a log) gets points instead, since a bar from 0 would hide the differences. The dashed line
    is the overall value; NA groups are marked ``n/a``; groups kept out of the gaps (fewer than
    ``min_group_size`` samples) are drawn grey and their label ends in ``*``.
    """
    if not metric.by_group:
        raise ValueError(f"metric {metric.name!r} has no attribute to plot by group")
    attrs = list(metric.by_group)
    sizes = [len(metric.by_group[a]) for a in attrs]
    fig = _new_figure(5.5, sum(_height(s) for s in sizes) + 0.5)
    axes = fig.subplots(len(attrs), 1, squeeze=False, height_ratios=[_height(s) for s in sizes])
    overall = metric.overall.value
    values = [e.value for g in metric.by_group.values() for e in g.values() if e.value is not None]
    bars = all(v >= 0 for v in values) and (overall is None or overall >= 0)
    for ax, a in zip(axes[:, 0], attrs):
        groups = list(metric.by_group[a].items())
        excluded = metric.excluded(a)
        y = np.arange(len(groups))[::-1]
        for yi, (g, est) in zip(y, groups):
            if est.value is None:
                x_na = 0 if bars else (overall if overall is not None else 0)
                ax.text(x_na, yi, " n/a", va="center", ha="left", fontsize=8, color="0.4")
                continue
            err = None
            if est.ci_low is not None and est.ci_high is not None:
                err = [[max(est.value - est.ci_low, 0.0)], [max(est.ci_high - est.value, 0.0)]]
            colour = "0.7" if g in excluded else _BLUE
            if bars:
                ax.barh(yi, est.value, xerr=err, color=colour, ecolor="0.2", capsize=3, height=0.6)
            else:
                ax.errorbar(est.value, yi, xerr=err, fmt="o", color=colour, ecolor="0.2", capsize=3)
        if overall is not None:
            ax.axvline(overall, color="0.3", linestyle="--", linewidth=1)
        if bars:
            ax.axvline(0, color="0.6", linewidth=0.6)
        ax.set_yticks(
            y, [_label(g) + (" *" if g in excluded else "") for g, _ in groups], fontsize=8
        )
        ax.set_ylim(-0.7, len(groups) - 0.3)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(_label(f"{metric.name} by {a}"), fontsize=9)
    note = "; dashed line: overall" if overall is not None else ""
    if any(metric.excluded(a) for a in attrs):
        note += f"; * fewer than {metric.min_group_size} samples: not in the gaps"
    fig.supxlabel(f"{_label(metric.name)}, {direction(metric)}{note}", fontsize=8)
    return fig


def plot_projection(projection: dict[str, Any]) -> Figure:
    """2-D scatter of the projected embeddings, one panel per attribute, coloured by group.

    Points are drawn in one seeded random order, not group by group, so that no group hides
    another under its points. Groups are listed in sorted order.
    """
    xy = np.asarray(projection.get("xy"), dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"projection['xy'] must have shape (M, 2), got {xy.shape}")
    attributes = dict(projection.get("attributes") or {})
    for a, values in attributes.items():
        if len(values) != len(xy):
            raise ValueError(
                f"projection['attributes'][{a!r}] has {len(values)} values for {len(xy)} points"
            )
    panels = list(attributes.items()) or [("", None)]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(4.4 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    order = np.random.default_rng(0).permutation(len(xy))
    for ax, (a, values) in zip(axes, panels):
        if values is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.6, linewidths=0, color=_BLUE)
        else:
            values = np.asarray(values).astype(str)
            groups, codes = np.unique(values, return_inverse=True)  # sorted names
            palette = _palette(len(groups))
            colours = np.array(palette)[codes.ravel()]
            ax.scatter(*xy[order].T, s=8, alpha=0.6, linewidths=0, c=colours[order])
            handles = [
                Line2D([], [], marker="o", linestyle="", color=c, markersize=4) for c in palette
            ]
            labels = [_label(g) for g in groups]
            ax.legend(
                handles,
                labels,
                fontsize=6,
                frameon=False,
                loc="upper left",
                bbox_to_anchor=(1, 1),
            )
            ax.set_title(_label(a), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    return fig


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_homophily(homophily: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Box plots of per-query neighbourhood homophily by group, one panel per attribute.

    The dotted line at 1 is "the attribute does not structure the neighbourhoods".
    """
    if not homophily:
        raise ValueError("homophily is empty: nothing to plot")
    attrs = list(homophily)
    sizes = [len(homophily[a]) for a in attrs]
    fig = _new_figure(5.5, sum(_height(s) for s in sizes) + 0.3)
    axes = fig.subplots(len(attrs), 1, squeeze=False, height_ratios=[_height(s) for s in sizes])
    for ax, a in zip(axes[:, 0], attrs):
        groups = list(homophily[a].items())
        y = np.arange(len(groups))[::-1]
        data, pos = [], []
        for yi, (_, values) in zip(y, groups):
            v = np.asarray(values, dtype=np.float64).ravel()
            v = v[np.isfinite(v)]
            if v.size:
                data.append(v)
                pos.append(yi)
            else:
                ax.text(1, yi, " n/a", va="center", ha="left", fontsize=8, color="0.4")
        if data:
            ax.boxplot(data, positions=pos, widths=0.6, showfliers=False, **_HORIZONTAL)
        ax.axvline(1.0, color="0.3", linestyle=":", linewidth=1)
        ax.set_yticks(y, [_label(g) for g, _ in groups], fontsize=8)
        ax.set_ylim(-0.7, len(groups) - 0.3)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(_label(f"neighbourhood homophily by {a} (1 = no structure)"), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- HTML

"""The bench's figure: per method (or ρ), accuracy against gap, with seed-to-seed error bars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["plot_points"]

#: (x column, y column, x label, y label) of each panel
_PANELS = (
    ("recall@1", "recall@1_gap", "overall Recall@1", "Recall@1 gap (max − min over groups)"),
    (
        "downstream_accuracy",
        "downstream_gap",
        "downstream accuracy (balanced training)",
        "downstream accuracy gap",
    ),
)


def _figure(ncols: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * ncols, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def plot_points(path: Path, rows: Mapping[str, Any], title: str, line: bool = False) -> None:
    """Save one point per :func:`~fairmetric.bench.stats.aggregate` row (mean ± std) to ``path``;
    ``line`` joins the points in row order (the ρ sweep)."""
    fig, axes = _figure(len(_PANELS))
    for ax, (xk, yk, xl, yl) in zip(axes, _PANELS):
        xs, ys = [], []
        for name, row in rows.items():
            x, y = row[xk], row[yk]
            if row["status"] != "ok" or x["mean"] is None or y["mean"] is None:
                continue
            ax.errorbar(
                x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=3, label=name
            )
            ax.annotate(name, (x["mean"], y["mean"]), textcoords="offset points", xytext=(5, 5))
            xs.append(x["mean"])
            ys.append(y["mean"])
        if line and len(xs) > 1:
            ax.plot(xs, ys, color="0.6", lw=1, zorder=0)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)

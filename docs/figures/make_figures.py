"""The README's worked verification audit as figures: its DET plot and its cross-group FMR heat map.

Run from the repository root::

    python docs/figures/make_figures.py

It rebuilds the stand-in embeddings of the README's ``verification_audit`` example (the same
lines, so the same numbers), audits them as the README does, and writes beside this file

- ``verification_det.png``: each group's DET curve, the global threshold's operating points marked
  (:func:`~fairmetric.report.verification_plots.det_plot`, as the HTML report draws it);
- ``verification_fmr_heatmap.png``: FMR at the global threshold over pairs of groups
  (:func:`~fairmetric.report.verification_plots.fmr_heatmap`);
- ``verification_figures.json``: the numbers the two figures show, which ``tests/test_figures.py``
  recomputes, so that a change that moves them cannot leave stale figures behind.

PNG bytes depend on the matplotlib and FreeType versions, so only the JSON is compared exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from fairmetric import EmbeddingSet
from fairmetric.audit.verification import verification_audit
from fairmetric.report import AuditReport
from fairmetric.report.verification_plots import det_plot, fmr_heatmap, roc_det_curves

HERE = Path(__file__).resolve().parent
DET_PNG = HERE / "verification_det.png"
HEATMAP_PNG = HERE / "verification_fmr_heatmap.png"
DATA_JSON = HERE / "verification_figures.json"
TARGET = "1e-3"  # the README's target FMR, as the report names it
ATTRIBUTE = "group"
DPI = 150
#: FMRs at which the JSON samples each DET curve (the plot's decades)
FMR_GRID = (1e-3, 1e-2, 1e-1)


def readme_embeddings() -> EmbeddingSet:
    """The README's stand-in embeddings: 300 people, group B look-alikes (its lines, verbatim)."""
    rng = np.random.default_rng(0)  # stand-ins for a face model's embeddings of 300 people
    centres = rng.normal(size=(300, 32))
    centres[150:] = 0.8 * rng.normal(size=32) + 0.9 * centres[150:]  # group B: look-alikes
    X = np.repeat(centres, 4, axis=0) + 0.6 * rng.normal(size=(1200, 32))
    group = np.repeat(["A"] * 150 + ["B"] * 150, 4)
    emb = EmbeddingSet(
        embeddings=X, labels=np.repeat(np.arange(300), 4), attributes={"group": group}
    )
    return emb


def readme_report() -> AuditReport:
    """The README's audit of :func:`readme_embeddings`."""
    emb = readme_embeddings()
    report = verification_audit(emb, fmr=[1e-3], bootstrap=200)
    return report


def _curves(report: AuditReport) -> dict[str, dict[str, Any]]:
    """Each group's DET curve, as the HTML report computes it."""
    by_group = report.verification["scores"][ATTRIBUTE]
    tau = [report.metadata["verification"]["targets"]["1e-3"]["threshold"]]
    return {g: roc_det_curves(gen, imp, keep_thresholds=tau) for g, (gen, imp) in by_group.items()}


def _threshold(report: AuditReport) -> float:
    return float(report.metadata["verification"]["targets"][TARGET]["threshold"])


def _matrix(report: AuditReport) -> dict[str, Any]:
    return report.metadata["verification"]["fmr_matrix"][TARGET][ATTRIBUTE]


def figures(report: AuditReport) -> dict[str, Any]:
    """The two figures (matplotlib ``Figure`` objects), keyed by the file they are saved to."""
    matrix = _matrix(report)
    values = np.array(
        [[np.nan if v is None else v for v in row] for row in matrix["fmr"]], dtype=float
    )
    det = det_plot(
        _curves(report),
        title=f"DET by {ATTRIBUTE}",
        target_fmrs=[1e-3],
        threshold=_threshold(report),
    )
    heat = fmr_heatmap(
        values, matrix["groups"], matrix["groups"], title=f"cross-group FMR at {TARGET}"
    )
    return {DET_PNG.name: det, HEATMAP_PNG.name: heat}


def _round(x: float | None, digits: int = 6) -> float | None:
    """``x`` to ``digits`` significant digits (``None`` for NaN or missing)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits - 1}e}")


def _at_threshold(curve: dict[str, Any], tau: float) -> tuple[float, float]:
    """(FMR, FNMR) of the curve point the DET plot marks: the smallest threshold >= ``tau``."""
    above = np.flatnonzero(curve["thresholds"] >= tau)
    if above.size == 0:
        return 0.0, 1.0
    i = above[-1]
    return float(curve["fmr"][i]), float(curve["fnmr"][i])


def _fnmr_at(curve: dict[str, Any], fmr: float) -> float | None:
    """FNMR of the last curve point with FMR <= ``fmr`` (the curve's value at that FMR line)."""
    ok = np.flatnonzero(curve["fmr"] <= fmr)
    return None if ok.size == 0 else float(curve["fnmr"][ok[-1]])


def _fmr_at_fnmr_0(curve: dict[str, Any]) -> float | None:
    """FMR of the first curve point (highest threshold) where every genuine pair matches."""
    ok = np.flatnonzero(curve["fnmr"] <= 0)
    return None if ok.size == 0 else float(curve["fmr"][ok[0]])


def figure_data(report: AuditReport | None = None) -> dict[str, Any]:
    """The numbers the figures show, rounded to six significant digits, as plain JSON values.

    Per group of the DET plot: pair counts, the number of curve points drawn, the ends of the
    curve, the marked operating point at the global threshold, FNMR where the curve crosses each
    FMR of ``FMR_GRID`` and the FMR from which FNMR is 0 (where the curve meets the plot's floor);
    for the heat map: its groups, FMR and impostor pair count per cell.
    """
    report = readme_report() if report is None else report
    tau = _threshold(report)
    det = {}
    for g, curve in _curves(report).items():
        fmr_tau, fnmr_tau = _at_threshold(curve, tau)
        det[g] = {
            "n_genuine": int(curve["n_genuine"]),
            "n_impostor": int(curve["n_impostor"]),
            "points": int(curve["fmr"].size),
            "first": [_round(curve["fmr"][0]), _round(curve["fnmr"][0])],
            "last": [_round(curve["fmr"][-1]), _round(curve["fnmr"][-1])],
            "at_threshold": {"fmr": _round(fmr_tau), "fnmr": _round(fnmr_tau)},
            "fnmr_at_fmr": {f"{f:g}": _round(_fnmr_at(curve, f)) for f in FMR_GRID},
            "fmr_at_fnmr_0": _round(_fmr_at_fnmr_0(curve)),
        }
    matrix = _matrix(report)
    return {
        "source": "README.md, Audit embeddings, Face verification: verification_audit example",
        "target_fmr": TARGET,
        "threshold": _round(tau),
        "det": det,
        "fmr_heatmap": {
            "groups": list(matrix["groups"]),
            "fmr": [[_round(v) for v in row] for row in matrix["fmr"]],
            "pairs": [[int(n) for n in row] for row in matrix["pairs"]],
        },
    }


def main() -> None:
    """Write the two PNGs and the JSON beside this file."""
    report = readme_report()
    for name, fig in figures(report).items():
        # no "Software" key (it names the matplotlib version): the bytes depend on less
        fig.savefig(HERE / name, dpi=DPI, metadata={"Software": None})
    text = json.dumps(figure_data(report), indent=2) + "\n"
    DATA_JSON.write_text(text)
    for path in (DET_PNG, HEATMAP_PNG, DATA_JSON):
        print(f"wrote {path.relative_to(HERE.parent.parent)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

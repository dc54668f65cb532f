"""The README's verification figures (``docs/figures/``) are current, valid and shown.

``docs/figures/make_figures.py`` draws them from the README's worked ``verification_audit``
example and writes the numbers they show to ``verification_figures.json``; here those numbers are
recomputed and compared with the committed file, so a change that moves them fails until the
figures are regenerated. The PNG bytes depend on the matplotlib and FreeType versions, so the
images are only checked to be PNGs of a sensible size.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs/figures"
README = ROOT / "README.md"
REGENERATE = "run `python docs/figures/make_figures.py` and commit docs/figures/"


def _script():
    spec = importlib.util.spec_from_file_location("make_figures", FIGURES / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_figures = _script()


@pytest.fixture(scope="module")
def report():
    return make_figures.readme_report()


def _same(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON values differ; floats to a relative 1e-9 (both are already rounded)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where or '/'}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _same(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y, f"{where}/{i}")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=0) else [f"{where}: {a} != {b}"]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]


def test_committed_numbers_are_the_figures_numbers(report):
    committed = json.loads(make_figures.DATA_JSON.read_text())
    fresh = json.loads(json.dumps(make_figures.figure_data(report)))
    diff = _same(fresh, committed)
    assert not diff, "the figures are stale:\n" + "\n".join(diff) + f"\n{REGENERATE}"


def test_figure_numbers_match_the_readme_output(report):
    """The JSON tells the README's story: the dots are the groups' exact operating points at
    the global threshold (B's right of the target line; A's far left of it and higher), and the
    heat map's same-group cells are the per-group FMRs the README prints."""
    data = make_figures.figure_data(report)
    fmr = report["fmr@1e-3"].by_group["group"]
    heat = data["fmr_heatmap"]
    assert heat["groups"] == ["A", "B"]
    for i, g in enumerate(heat["groups"]):
        assert heat["fmr"][i][i] == pytest.approx(fmr[g].value, rel=1e-5)
    fnmr = report["fnmr@1e-3"].by_group["group"]
    for g in ("A", "B"):  # exact, not a thinned curve's neighbouring point
        assert data["det"][g]["at_threshold"]["fmr"] == pytest.approx(fmr[g].value, rel=1e-5)
        assert data["det"][g]["at_threshold"]["fnmr"] == pytest.approx(fnmr[g].value, rel=1e-5)
    assert data["det"]["B"]["at_threshold"]["fmr"] > 1e-3  # marked right of the target line
    assert data["det"]["A"]["at_threshold"]["fmr"] < 1e-4  # far left of it
    assert data["det"]["A"]["at_threshold"]["fnmr"] > data["det"]["B"]["at_threshold"]["fnmr"]
    tau = report["threshold@1e-3"].overall.value
    assert data["threshold"] == pytest.approx(tau, rel=1e-5)


def test_script_builds_the_readme_data():
    """The script's data lines are the README example's (whitespace aside)."""
    source = inspect.getsource(make_figures.readme_embeddings)
    script = source[source.index("rng = ") : source.index("return emb")]
    text = README.read_text()
    start = text.index("**Face verification**")
    block = text[text.index("```python", start) : text.index("report = verification_audit", start)]
    readme = block[block.index("rng = ") :]

    def squash(s: str) -> str:
        return re.sub(r"\s+", "", s)

    assert squash(script) == squash(readme)
    assert "verification_audit(emb, fmr=[1e-3], bootstrap=200)" in text[start:]
    assert "verification_audit(emb, fmr=[1e-3], bootstrap=200)" in inspect.getsource(
        make_figures.readme_report
    )


def test_figures_render(report):
    """The script still draws with the plot functions it calls (without writing the files)."""
    drawn = make_figures.figures(report)
    assert set(drawn) == {make_figures.DET_PNG.name, make_figures.HEATMAP_PNG.name}
    for fig in drawn.values():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=make_figures.DPI, metadata={"Software": None})
        assert buf.getvalue().startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["verification_det.png", "verification_fmr_heatmap.png"])
def test_pngs_are_valid_and_small(path):
    file = FIGURES / path
    assert file.exists(), f"{file} is missing: {REGENERATE}"
    assert 5_000 < file.stat().st_size < 100_000
    with Image.open(file) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(file) as image:
        width, height = image.size
    assert 400 <= width <= 1200 and 300 <= height <= 1000, image.size


def test_readme_shows_both_figures():
    text = README.read_text()
    for path in ("docs/figures/verification_det.png", "docs/figures/verification_fmr_heatmap.png"):
        assert re.search(rf"!\[[^\]]+\]\({re.escape(path)}\)", text), f"README: no image {path}"
    assert "python docs/figures/make_figures.py" in text

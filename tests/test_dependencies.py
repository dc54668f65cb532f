"""The runtime dependencies are bounded on both sides, and what is installed lies inside.

pytorch-metric-learning 3.0 was a breaking release for fairmetric (it subclasses PML's reducers),
so every runtime dependency carries an upper bound at the next major release and a lower bound
at the oldest release fairmetric is checked with (``make lower-bounds``, docs/dependencies.md).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


REQUIREMENTS = runtime_requirements()
LOWER = (">=", "==", "~=", "===")
UPPER = ("<", "<=", "==", "~=", "===")


def lower_bound(req: Requirement) -> Version:
    (spec,) = [s for s in req.specifier if s.operator in (">=", "==", "~=")]
    return Version(spec.version)


def test_there_are_runtime_requirements():
    names = {r.name for r in REQUIREMENTS}
    assert {"torch", "pytorch-metric-learning", "timm", "faiss-cpu", "numpy"} <= names


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda r: r.name)
def test_every_runtime_dependency_has_a_lower_and_an_upper_bound(req):
    ops = {s.operator for s in req.specifier}
    assert ops & set(LOWER), f"{req}: no lower bound (add >=OLDEST_TESTED)"
    assert ops & set(UPPER), f"{req}: no upper bound (add <NEXT_MAJOR)"
    assert len([s for s in req.specifier if s.operator in (">=", "==", "~=")]) == 1, req
    # the upper bound stops at a major release, not inside the tested major
    for s in req.specifier:
        if s.operator == "<":
            upper = Version(s.version)
            assert upper.release[1:] in ((), (0,), (0, 0)), f"{req}: {s} is not a major bound"
            assert upper > lower_bound(req), req


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda r: r.name)
def test_installed_version_satisfies_the_bounds(req):
    try:
        installed = version(req.name)
    except PackageNotFoundError:  # pragma: no cover - a broken environment
        pytest.fail(f"{req.name} is a runtime dependency but is not installed")
    # a local build tag (torch 2.14.1+cpu) is the same release
    public = Version(installed).public
    assert req.specifier.contains(public, prereleases=True), (
        f"installed {req.name} {installed} is outside {req.specifier}: widen the bound after "
        "testing it, or install a version inside"
    )


def test_pml_upper_bound_excludes_the_breaking_release():
    (pml,) = [r for r in REQUIREMENTS if r.name == "pytorch-metric-learning"]
    assert not pml.specifier.contains("3.0.0")
    assert pml.specifier.contains("2.5.0") and pml.specifier.contains("2.9.0")


def test_lower_bounds_script_pins_every_lower_bound():
    """``scripts/check_lower_bounds.sh --print-pins`` pins each runtime dependency at its lower
    bound, or names why it does not."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_lower_bounds.sh"), "--print-pins"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    pins = {}
    for line in out.splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins[req.name] = req
    for req in REQUIREMENTS:
        if req.name in ("torch", "torchvision"):
            assert req.name not in pins  # the environment's own build is used (see the script)
            assert f"# {req.name}" in out
            continue
        assert str(pins[req.name].specifier) == f"=={lower_bound(req)}", pins[req.name]


#: the README's block of the tested versions follows this comment
README_MARK = "<!-- checked by tests/test_dependencies.py: the bounds in pyproject.toml -->"


def render_versions() -> str:
    """The README's block: every runtime dependency, its allowed range, the oldest checked."""
    rows = [f"{'package':<26}{'allowed':<22}oldest checked (make lower-bounds)"]
    for req in REQUIREMENTS:
        order = {">=": 0, "!=": 1, "<": 2}  # lower bound, exclusions, upper bound
        spec = ",".join(str(s) for s in sorted(req.specifier, key=lambda s: order[s.operator]))
        oldest = str(lower_bound(req))
        if req.name in ("torch", "torchvision"):  # wheels of several GB: not reinstalled
            oldest = "not checked (the installed one is reused)"
        rows.append(f"{req.name:<26}{spec:<22}{oldest}")
    return "\n".join(rows) + "\n"


def test_readme_lists_the_tested_versions():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_MARK in text, "README: the tested-versions block is gone"
    body = text.index("```text\n", text.index(README_MARK)) + len("```text\n")
    block = text[body : text.index("```", body)]
    assert block == render_versions(), "README's tested versions are stale:\n" + render_versions()

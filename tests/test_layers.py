"""The package's architecture: layers that point one way, no import cycles, one version.

The layers contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is checked with
import-linter, the ecosystem's tool for it; the cycle check walks grimp's import graph (every
import statement, lazy ones inside functions included, ``TYPE_CHECKING`` blocks excluded).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

import fairmetric

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("fairmetric", exclude_type_checking_imports=True)


def _cycles(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(adjacency):
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_planted_cycle():
    # the checker itself: a 3-cycle and a self-contained chain
    adjacency = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(adjacency) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_layers_contract_holds(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_logo=True) == 0, (
        "an import crosses fairmetric's layers upwards; run `lint-imports` for the chain"
    )


def test_no_import_cycles(graph):
    adjacency = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(adjacency) == []


@pytest.mark.parametrize("upper", ["train", "sampling", "losses", "downstream", "sources", "cli"])
def test_audit_imports_nothing_above_it(graph, upper):
    chain = graph.find_shortest_chain(importer="fairmetric.audit", imported=f"fairmetric.{upper}")
    assert chain is None, f"fairmetric.audit reaches fairmetric.{upper}: {' -> '.join(chain)}"
    for module in graph.find_descendants("fairmetric.audit"):
        assert not graph.chain_exists(module, f"fairmetric.{upper}", as_packages=True), module


def test_the_version_lives_in_one_place():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version\s*=\s*\"", text, re.M) is None  # no literal: taken from the package
    assert 'version = { attr = "fairmetric.__version__" }' in text
    if sys.version_info >= (3, 11):
        from importlib.metadata import version

        assert version("fairmetric") == fairmetric.__version__

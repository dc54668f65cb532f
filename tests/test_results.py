"""The README's five-seed result blocks are what benchmarks/identities_suite.py renders from the
committed tables (benchmarks/results/issue13), and the claims about them hold."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _suite():
    spec = importlib.util.spec_from_file_location(
        "identities_suite", ROOT / "benchmarks/identities_suite.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def suite():
    return _suite()


def test_readme_result_blocks_equal_the_committed_tables(suite):
    text = (ROOT / "README.md").read_text()
    assert text == suite.render_readme(text), (
        "README result blocks are stale: python benchmarks/identities_suite.py --update-readme"
    )


def _rows(suite, dataset):
    return json.loads((suite.RESULTS / dataset / "table.json").read_text())


@pytest.mark.parametrize("backbone", ["mlp", "cnn"])
def test_the_benchmark_is_sound(suite, backbone):
    """The README's first bullet: gap above zero, the oracle removes most, the null control
    shows none, the intrinsic control cannot be fixed, the gap persists downstream."""
    found = {c: ok for c, ok, _ in suite.checks(suite.RESULTS, backbone) if "cut >= 50%" not in c}
    assert found and all(found.values()), found


def test_no_method_comes_close_to_the_oracle(suite):
    """The README's second bullet, on the MLP per image and per identity."""
    for dataset in ("identities_mlp", "identities_mlp_person"):
        paired = _rows(suite, dataset)["paired"]["rows"]
        oracle = paired["oracle"]["recall@1_gap"]["relative"]
        for arm, row in paired.items():
            if arm == "oracle":
                continue
            cut = row["recall@1_gap"]["relative"]
            assert cut > oracle / 2, (dataset, arm, cut, oracle)

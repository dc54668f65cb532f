"""The suite's command-line options map onto ``run_suite``'s arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairmetric import bench

# -- command line --------------------------------------------------------------------------------


def test_arg_parser_maps_to_run_suite_options():
    args = bench.build_arg_parser().parse_args(
        [
            "--datasets",
            "gaussian",
            "celeba",
            "--methods",
            "baseline",
            "parade",
            "--seeds",
            "0",
            "1",
            "--epochs",
            "3",
            "--rho-sweep",
            "0",
            "10",
            "--data-root",
            "celeba=/data/celeba",
            "--out",
            "runs/x",
            "--no-progress",
            "--threads",
            "2",
            "train.device=cpu",
        ]
    )
    assert bench.options_from_args(args) == {
        "datasets": ["gaussian", "celeba"],
        "methods": ["baseline", "parade"],
        "seeds": [0, 1],
        "out": Path("runs/x"),
        "overrides": ["train.device=cpu"],
        "rho_sweep": [0.0, 10.0],
        "data_roots": {"celeba": "/data/celeba"},
        "epochs": 3,
        "threads": 2,
        "progress": False,
    }
    defaults = bench.options_from_args(bench.build_arg_parser().parse_args([]))
    assert defaults["datasets"] == ["identities_mlp"] and defaults["methods"] is None
    assert defaults["seeds"] == [0, 1, 2, 3, 4] and defaults["threads"] == 1
    with pytest.raises(SystemExit):
        bench.build_arg_parser().parse_args(["--data-root", "celeba"])

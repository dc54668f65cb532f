"""The benchmark suite end to end: cells, resumability, tables that match their cells, the ρ
sweep, infeasible methods and bad input."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

import fairmetric.train.trainer as trainer
from fairmetric.bench import COLUMNS, run_suite
from tests.conftest import GAUSSIAN

PNG = b"\x89PNG\r\n\x1a\n"
SEEDS = (0, 1)
RHOS = (0.0, 10.0)
_T975 = {1: 12.706204736}  # Student t quantile 0.975 by degrees of freedom (tables)


def _suite(out: Path, **kw):
    args = dict(
        datasets=["gaussian"],
        methods=["baseline", "reweight"],
        seeds=SEEDS,
        out=out,
        overrides=GAUSSIAN,
        epochs=1,
        progress=False,
    )
    return run_suite(**{**args, **kw})


def _cells(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("seed*/cell.json"))]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, _suite(out, rho_sweep=RHOS)


class _TrainSpy:
    """Counts train() calls (and their ``resume`` flag) and delegates to the real one."""

    def __init__(self, monkeypatch):
        self.calls: list[bool] = []
        self._real = trainer.train
        monkeypatch.setattr(trainer, "train", self)

    def __call__(self, cfg, out, *, resume=False, **kw):
        self.calls.append(resume)
        return self._real(cfg, out, resume=resume, **kw)


# -- the table ---------------------------------------------------------------------------------


def test_suite_writes_cells_and_tables(suite):
    out, summary = suite
    ds = out / "gaussian"
    for method in ("baseline", "reweight"):
        for seed in SEEDS:
            run = ds / method / f"seed{seed}"
            assert (run / "model" / "model.safetensors").is_file()
            assert (run / "checkpoint.pt").is_file()
            cell = json.loads((run / "cell.json").read_text())
            assert cell["status"] == "ok"
            assert cell["config"]["train"]["seed"] == seed
            assert cell["config"]["train"]["epochs"] == 1
            assert (cell["config"]["reducer"]["name"] == "group_weighted") is (method == "reweight")
            for col in COLUMNS:  # every number is measured on this tiny setting
                assert isinstance(cell[col], float), (method, seed, col)
            assert 0.0 <= cell["recall@1"] <= 1.0
            assert cell["worst_recall@1"] == min(cell["recall@1_by_group"].values())
            assert cell["recall@1_gap"] == pytest.approx(
                max(cell["recall@1_by_group"].values()) - min(cell["recall@1_by_group"].values())
            )
            assert cell["downstream_gap"] == pytest.approx(
                max(cell["downstream_by_group"].values())
                - min(cell["downstream_by_group"].values())
            )
    # the two seeds are different runs
    base = _cells(ds / "baseline")
    assert base[0]["recall@1_by_group"] != base[1]["recall@1_by_group"] or (
        base[0]["leakage"] != base[1]["leakage"]
    )

    files = summary["datasets"]["gaussian"]["files"]
    assert files == {
        "md": ds / "table.md",
        "json": ds / "table.json",
        "png": ds / "table.png",
    }
    assert (ds / "table.png").read_bytes()[:8] == PNG
    md = (ds / "table.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| method"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "method",
        "seeds",
        *COLUMNS.values(),
    ]
    methods_table = md[: md.index("## Change against the same-seed baseline")]
    rows = [
        line
        for line in methods_table
        if line.startswith("| baseline") or line.startswith("| reweight")
    ]
    assert [r.split("|")[1].strip() for r in rows] == ["baseline", "reweight"]
    table = json.loads((ds / "table.json").read_text())
    assert list(table["rows"]) == ["baseline", "reweight"]
    assert table["attribute"] == "group" and table["seeds"] == list(SEEDS)


def test_table_means_equal_manual_computation(suite):
    out, summary = suite
    ds = out / "gaussian"
    table = json.loads((ds / "table.json").read_text())
    md = (ds / "table.md").read_text()
    for method in ("baseline", "reweight"):
        cells = _cells(ds / method)
        assert len(cells) == 2
        row = table["rows"][method]
        assert row["seeds"] == list(SEEDS)
        for col in COLUMNS:
            values = [c[col] for c in cells]
            assert row[col]["mean"] == pytest.approx(statistics.mean(values), abs=1e-12)
            assert row[col]["std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
            assert row[col]["n"] == 2
        line = next(x for x in md.splitlines() if x.startswith(f"| {method} "))
        r1 = [c["recall@1"] for c in cells]
        assert f"{statistics.mean(r1):.3f} ± {statistics.stdev(r1):.3f}" in line
    assert summary["datasets"]["gaussian"]["table"] == table["rows"]


def test_paired_changes_equal_manual_computation(suite):
    out, summary = suite
    ds = out / "gaussian"
    table = json.loads((ds / "table.json").read_text())
    assert table["paired"]["baseline"] == "baseline" and table["paired"]["level"] == 0.95
    paired = table["paired"]["rows"]
    assert list(paired) == ["reweight"] and summary["datasets"]["gaussian"]["paired"] == paired
    base = {c["seed"]: c for c in _cells(ds / "baseline")}
    method = {c["seed"]: c for c in _cells(ds / "reweight")}
    assert paired["reweight"]["seeds"] == list(SEEDS)
    md = (ds / "table.md").read_text()
    line = next(x for x in md.splitlines()[::-1] if x.startswith("| reweight "))
    for col in COLUMNS:
        d = [method[s][col] - base[s][col] for s in SEEDS]
        mean = statistics.mean(d)
        half = _T975[len(d) - 1] * statistics.stdev(d) / math.sqrt(len(d))
        row = paired["reweight"][col]
        assert row["mean"] == pytest.approx(mean, abs=1e-12)
        assert (row["low"], row["high"]) == pytest.approx((mean - half, mean + half), abs=1e-9)
        assert row["excludes_zero"] is (mean - half > 0 or mean + half < 0)
    r1 = paired["reweight"]["recall@1"]
    assert f"{r1['mean']:+.3f} [{r1['low']:+.3f}, {r1['high']:+.3f}]" in line
    # the ρ sweep is compared with the same-seed baseline too
    sweep = json.loads((ds / "rho_sweep.json").read_text())["paired"]["rows"]
    assert list(sweep) == ["rho=0", "rho=10"]
    for rho in RHOS:
        cells = {c["seed"]: c for c in _cells(ds / "rho_sweep" / f"rho{rho:g}")}
        d = [cells[s]["recall@1_gap"] - base[s]["recall@1_gap"] for s in SEEDS]
        assert sweep[f"rho={rho:g}"]["recall@1_gap"]["mean"] == pytest.approx(statistics.mean(d))


# -- ρ sweep -----------------------------------------------------------------------------------


def test_rho_sweep_writes_plot_and_table(suite):
    out, summary = suite
    ds = out / "gaussian"
    sweep = summary["datasets"]["gaussian"]["rho_sweep"]
    assert (ds / "rho_sweep.png").read_bytes()[:8] == PNG
    table = json.loads((ds / "rho_sweep.json").read_text())
    assert list(table["rows"]) == ["rho=0", "rho=10"] == list(sweep["table"])
    assert table["rho"] == list(RHOS)
    md = (ds / "rho_sweep.md").read_text()
    assert "| rho=0 | 2 |" in md and "| rho=10 | 2 |" in md
    for rho in RHOS:
        cells = _cells(ds / "rho_sweep" / f"rho{rho:g}")
        assert [c["seed"] for c in cells] == list(SEEDS)
        for c in cells:
            assert c["config"]["objective"]["parade"]["rho"] == rho
            assert c["config"]["objective"]["parade"]["attributes"] == ["group"]
        row = table["rows"][f"rho={rho:g}"]
        gaps = [c["recall@1_gap"] for c in cells]
        assert row["recall@1_gap"]["mean"] == pytest.approx(statistics.mean(gaps))
    # the sweep is not part of the method table
    assert "parade" not in json.loads((ds / "table.json").read_text())["rows"]


# -- resumability --------------------------------------------------------------------------------


def test_second_call_recomputes_nothing(suite, tmp_path, monkeypatch):
    src, first = suite
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("cell.json")}
    assert len(stamps) == 8  # 2 methods × 2 seeds + 2 ρ × 2 seeds
    spy = _TrainSpy(monkeypatch)
    again = _suite(out, rho_sweep=RHOS)
    assert spy.calls == []
    assert all(c["cached"] for c in again["cells"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("cell.json")} == stamps
    assert again["datasets"]["gaussian"]["table"] == first["datasets"]["gaussian"]["table"]


def test_cell_with_only_a_checkpoint_resumes(tmp_path, monkeypatch):
    out = tmp_path / "b"
    _suite(out, methods=["baseline"], seeds=[0])
    run = out / "gaussian" / "baseline" / "seed0"
    before = json.loads((run / "cell.json").read_text())
    (run / "cell.json").unlink()
    shutil.rmtree(run / "model")
    spy = _TrainSpy(monkeypatch)
    # same epochs: resumed from the checkpoint, nothing retrained, the same numbers
    summary = _suite(out, methods=["baseline"], seeds=[0])
    assert spy.calls == [True]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # epochs 0 and 1
    after = summary["cells"][0]
    assert after["resumed"] is True and after["cached"] is False
    for col in COLUMNS:
        assert after[col] == before[col]
    # more epochs: the finished cell continues from its checkpoint instead of starting over
    summary = _suite(out, methods=["baseline"], seeds=[0], epochs=2)
    assert spy.calls == [True, True]
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert json.loads((run / "cell.json").read_text())["epochs"] == 2


def test_changed_config_of_a_trained_cell_is_an_error(tmp_path):
    out = tmp_path / "c"
    _suite(out, methods=["baseline"], seeds=[0])
    with pytest.raises(ValueError, match="config differs"):
        _suite(out, methods=["baseline"], seeds=[0], overrides=[*GAUSSIAN, "optim.lr=0.01"])


# -- infeasible methods ----------------------------------------------------------------------------


def test_infeasible_method_is_skipped_with_its_reason(tmp_path):
    # tiny Gaussian split: 8 training classes, 3 in g1, so 50:50 quotas of 16 at m=4 are impossible
    out = tmp_path / "d"
    summary = _suite(out, methods=["batch_balanced"], seeds=[0])
    row = summary["datasets"]["gaussian"]["table"]["batch_balanced"]
    assert row["status"] == "skipped" and row["seeds"] == []
    assert summary["datasets"]["gaussian"]["paired"] is None  # no baseline to pair with
    assert "impossible" in row["reason"]
    assert not (out / "gaussian" / "batch_balanced" / "seed0" / "cell.json").exists()
    md = (out / "gaussian" / "table.md").read_text()
    assert "| batch_balanced | 0 | skipped" in md and "impossible" in md


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"methods": ["baseline", "dropout"]}, r"unknown method 'dropout'.*baseline, oracle"),
        ({"methods": ["parade+dropout"]}, r"unknown method 'dropout'"),
        ({"methods": ["parade", "parade"]}, r"methods listed twice"),
        ({"threads": -1}, r"threads must be an integer >= 0"),
        ({"datasets": ["mnist"]}, r"unknown dataset 'mnist'.*identities_mlp, "),
        ({"datasets": ["celeba"]}, r"'celeba' is read from a local copy.*data_roots"),
        ({"data_roots": {"gaussian": "/x"}}, r"only on-disk datasets take a root"),
        ({"methods": []}, r"no method given"),
        ({"seeds": [0, 0]}, r"seeds listed twice"),
        ({"rho_sweep": [-1]}, r"rho_sweep"),
        ({"overrides": ["train.nope=1"]}, r"nope"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, kw, match):
    out = tmp_path / "e"
    with pytest.raises(ValueError, match=match):
        _suite(out, **kw)
    assert not out.exists()


def test_missing_data_root_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="lfw"):
        _suite(tmp_path / "f", datasets=["lfw"], data_roots={"lfw": tmp_path / "absent"})


def test_oracle_is_skipped_where_a_dataset_defines_none(tmp_path, monkeypatch):
    from fairmetric.bench import methods as bench_methods

    spec = bench_methods.DATASETS["gaussian"]
    monkeypatch.setitem(bench_methods.DATASETS, "gaussian", type(spec)(spec.config, spec.attribute))
    said = []
    summary = _suite(tmp_path / "o", methods=["baseline", "oracle"], seeds=[0], log=said.append)
    assert list(summary["datasets"]["gaussian"]["table"]) == ["baseline"]
    assert any("no oracle arm" in s for s in said)


def test_threads_are_set_while_training_and_restored(tmp_path, monkeypatch):
    import torch

    seen = []
    real = trainer.train

    def spy(cfg, out, **kw):
        seen.append(torch.get_num_threads())
        return real(cfg, out, **kw)

    monkeypatch.setattr(trainer, "train", spy)
    before = torch.get_num_threads()
    _suite(tmp_path / "t", methods=["baseline"], seeds=[0], threads=1)
    assert seen == [1] and torch.get_num_threads() == before

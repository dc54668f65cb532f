"""`fairmetric audit --verification`: per-group FMR / FNMR in the reports and in --fail-if."""

from __future__ import annotations

import json

import pytest

from fairmetric.audit.verification import verification_audit
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet
from tests.conftest import crowded_identities


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("ver") / "emb.npz"
    crowded_identities(ids=60, per=3).save(path)
    return path


def _run(npz, tmp_path, *extra: str) -> int:
    argv = ["audit", str(npz), "--verification", "--bootstrap", "20", "--no-progress"]
    return main([*argv, "--no-linear-probe", "--out", str(tmp_path / "out"), *extra])


def test_verification_metrics_reach_every_report(npz, tmp_path, capsys):
    assert _run(npz, tmp_path, "--fmr", "1e-2,1e-3") == 0
    out = capsys.readouterr().out
    assert "fmr@1e-2" in out and "fnmr@1e-3" in out and "threshold@1e-2" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    meta = report["metadata"]["verification"]
    assert set(meta["targets"]) == {"1e-2", "1e-3"}
    assert meta["pairs"]["genuine_all"] and meta["pairs"]["impostor_all"]
    assert meta["pairs"]["genuine"] == 60 * 3  # 3 pairs per identity of 3 samples
    fmr = report["metrics"]["fmr@1e-2"]
    assert set(fmr["summaries"]) == {"max_over_min", "max_geomean", "gini", "garbe", "fdr", "ir"}
    # the same numbers as the Python function on the same data and settings
    direct = verification_audit(
        EmbeddingSet.load(npz), fmr=[1e-2, 1e-3], bootstrap=20, seed=0
    ).to_dict()["metrics"]["fmr@1e-2"]
    assert fmr["by_group"] == direct["by_group"] and fmr["summaries"] == direct["summaries"]
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Verification (NIST FRVT / ISO/IEC 19795-10)" in markdown
    assert "| max_geomean |" in markdown and "Cross-group FMR" in markdown
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Verification (NIST FRVT / ISO/IEC 19795-10)</h2>" in html
    for alt in (
        "DET curves by g",
        "ROC curves by g",
        "genuine and impostor score distributions by g",
    ):
        assert f'<img alt="{alt}" src="data:image/png;base64,' in html
    assert '<img alt="cross-group FMR by g" src="data:image/png;base64,' in html


def test_gate_on_a_disparity_summary(npz, tmp_path, capsys):
    assert _run(npz, tmp_path, "--fmr", "1e-2", "--fail-if", "fmr@1e-2.max_geomean>1000") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    value = report["metrics"]["fmr@1e-2"]["summaries"]["max_geomean"]["g"]["value"]
    fmr = report["metrics"]["fmr@1e-2"]["by_group"]["g"]
    assert fmr["b"]["value"] > 3 * fmr["a"]["value"]  # b's crowded identities: false matches
    assert value > 1.5
    capsys.readouterr()
    assert _run(npz, tmp_path, "--fmr", "1e-2", "--fail-if", "fmr@1e-2.max_geomean>1") == 1
    err = capsys.readouterr().err
    assert f"fmr@1e-2 max_geomean for g is {value:.4f}" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metric", "ip"], "use --metric cosine or --metric l2"),
        (["--fail-if", "fmr@1e-3.gini>0.1"], "unknown metric 'fmr@1e-3'"),
        (["--fail-if", "recall@1.gini>0.1"], "unknown statistic 'gini' for recall@1"),
    ],
)
def test_bad_verification_input_exits_2(npz, tmp_path, capsys, extra, message):
    assert _run(npz, tmp_path, "--fmr", "1e-2", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["0.5,2", "abc", "0"])
def test_bad_fmr_list_is_a_usage_error(npz, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:  # argparse: usage line and exit status 2
        _run(npz, tmp_path, "--fmr", value)
    assert info.value.code == 2
    assert "--fmr takes comma-separated numbers in (0, 1)" in capsys.readouterr().err

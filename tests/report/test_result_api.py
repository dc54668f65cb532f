"""AuditReport conveniences: to_pandas(), _repr_html_(), summary()."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report import AuditReport, render_summary
from fairmetric.report.frame import Estimate, GroupMetric


@pytest.fixture(scope="module")
def report() -> AuditReport:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    x = rng.normal(size=(10, 8))[labels] + rng.normal(scale=0.7, size=(60, 8))
    data = EmbeddingSet(
        embeddings=x,
        labels=labels,
        attributes={
            "colour": np.tile(["red", "blue", "green"], 20),
            "size": np.tile(["s", "l"], 30),
        },
    )
    return audit(data, ks=[1, 2], bootstrap=20, seed=0, min_group_size=1)


def test_to_pandas_holds_every_estimate_of_the_report(report):
    pd = pytest.importorskip("pandas")
    df = report.to_pandas()
    assert list(df.columns) == [
        "metric",
        "attribute",
        "group",
        "value",
        "ci_low",
        "ci_high",
        "count",
    ]
    expected = []  # a loop over the report's own estimates
    for name, m in report.metrics.items():
        expected.append((name, None, None, m.overall))
        for a, groups in m.by_group.items():
            for g, e in groups.items():
                expected.append((name, a, g, e))
    assert len(df) == len(expected)

    def same(x, y):
        return (y is None and math.isnan(x)) or x == y

    for row, (name, a, g, e) in zip(df.itertuples(index=False), expected):
        assert row.metric == name
        if a is None:  # the overall row: attribute and group missing
            assert pd.isna(row.attribute) and pd.isna(row.group)
        else:
            assert (row.attribute, row.group) == (a, g)
        assert same(row.value, e.value) and same(row.ci_low, e.ci_low)
        assert same(row.ci_high, e.ci_high) and row.count == e.count
    assert {"colour", "size", "colour×size"} <= set(df.attribute.dropna())
    assert df.value.dtype == np.float64 and df["count"].dtype == np.int64
    overall = df[df.attribute.isna()]
    assert list(overall.metric) == list(report.metrics)


def test_to_pandas_keeps_na_values_as_nan():
    pytest.importorskip("pandas")
    m = GroupMetric(
        name="m",
        description="",
        higher_is_better=True,
        overall=Estimate(0.5, 4),
        by_group={"a": {"x": Estimate(None, 0, na_reason="no sample"), "y": Estimate(0.5, 4)}},
    )
    df = AuditReport(metrics={"m": m}, metadata={}).to_pandas()
    assert math.isnan(df.value[1]) and df.value[2] == 0.5 and math.isnan(df.ci_low[0])


def test_to_pandas_without_pandas_names_the_install(report, monkeypatch):
    real = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas"):
        report.to_pandas()


def test_summary_is_what_the_cli_prints(report, tmp_path, capsys):
    assert report.summary() == render_summary(report)
    from fairmetric.cli import main

    data_path = tmp_path / "emb.npz"
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(8), 4)
    EmbeddingSet(
        embeddings=rng.normal(size=(32, 4)),
        labels=labels,
        attributes={"g": np.tile(["u", "v"], 16)},
    ).save(data_path)
    assert main(["audit", str(data_path), "--k", "1", "--bootstrap", "5", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    again = audit(EmbeddingSet.load(data_path), ks=[1], bootstrap=5, seed=0, source=str(data_path))
    assert again.summary() in printed
    assert printed.startswith(again.summary().splitlines()[0])


def test_repr_html_is_a_compact_escaped_table(report):
    page = report._repr_html_()
    assert page.count("<tr>") == 1 + sum(max(1, len(m.by_group)) for m in report.metrics.values())
    assert "recall@1" in page and "worst group" in page
    evil = GroupMetric(
        name="recall@1",
        description="",
        higher_is_better=True,
        overall=Estimate(0.5, 20),
        by_group={
            "<b>attr</b>": {
                "<script>alert(1)</script>": Estimate(0.2, 10, 0.1, 0.3),
                "ok": Estimate(0.8, 10, 0.7, 0.9),
            }
        },
    )
    page = AuditReport(metrics={"recall@1": evil}, metadata={"source": "<img>"})._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>attr" not in page and "<img>" not in page

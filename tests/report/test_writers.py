"""Report writers: files written atomically, JSON round trip, Markdown content, safe HTML."""

from __future__ import annotations

import base64
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fairmetric.report.frame import Grouping, group_metric_from_samples
from fairmetric.report.plots import (
    figure_to_data_uri,
    plot_group_bars,
    plot_homophily,
    plot_projection,
)
from fairmetric.report.result import SCHEMA_VERSION, AuditReport
from fairmetric.report.writers import (
    format_interval,
    format_number,
    render_html,
    render_markdown,
    render_summary,
    write_report,
)

XSS = "<script>alert(1)</script>"
MATH = r"$\frac$"  # invalid mathtext: must be drawn as plain text
NA_REASON = "no query of this group has another sample of its class"
PNG_URI = "data:image/png;base64,"


def _groupings(n: int, rng: np.random.Generator) -> list[Grouping]:
    colour = np.arange(n) % 3  # light, dark, grey
    sex = rng.integers(0, 2, size=n)
    inter = colour * 2 + sex
    colour_names = ["light", "dark", "grey"]
    sex_names = ["female", XSS]
    return [
        Grouping("colour", colour, colour_names),
        Grouping("sex", sex, sex_names),
        Grouping("colour×sex", inter, [f"{c}×{s}" for c in colour_names for s in sex_names]),
    ]


def _metrics(n: int = 90, n_boot: int = 40) -> dict:
    rng = np.random.default_rng(0)
    groupings = _groupings(n, rng)
    colour = groupings[0].codes
    hits = (rng.random(n) < np.where(colour == 0, 0.8, 0.5)).astype(float)
    valid = colour != 2  # "grey" has no valid query: NA
    pair_count = rng.integers(1, 5, size=n).astype(float)
    pair_sum = pair_count * rng.uniform(0.2, 1.5, size=n)
    recall = group_metric_from_samples(
        "recall@1",
        num=hits,
        valid=valid,
        groupings=groupings,
        higher_is_better=True,
        description="Fraction of queries whose nearest neighbour shares their class.",
        n_boot=n_boot,
        na_reason=NA_REASON,
    )
    intra = group_metric_from_samples(
        "intra_class_alignment",
        num=pair_sum,
        den=pair_count,
        groupings=groupings,
        higher_is_better=False,
        description="Mean squared distance between same-class pairs.",
        n_boot=n_boot,
    )
    uniformity = group_metric_from_samples(
        "uniformity",
        num=pair_count * rng.uniform(0.01, 0.2, size=n),
        den=pair_count,
        groupings=groupings,
        higher_is_better=False,
        transform=math.log,
        n_boot=n_boot,
    )
    leakage = group_metric_from_samples(
        "leakage_knn:colour",
        num=hits,
        groupings=[],
        higher_is_better=False,
        description="k-NN balanced accuracy of predicting colour.",
        n_boot=n_boot,
    )
    return {m.name: m for m in (recall, intra, uniformity, leakage)}


def _metadata(source: str = f"model {XSS}") -> dict:
    return {
        "n": 90,
        "dim": 8,
        "metric": "cosine",
        "index": "flat",
        "k": 5,
        "seed": 0,
        "bootstrap": 40,
        "fairmetric_version": "0.1.0",
        "source": source,
        "attributes": ["colour", "sex"],
        "groupings": ["colour", "sex", "colour×sex"],
        "seconds": 0.25,
    }


@pytest.fixture(scope="module")
def metrics() -> dict:
    return _metrics()


@pytest.fixture(scope="module")
def full_report(metrics) -> AuditReport:
    rng = np.random.default_rng(1)
    m = 60
    return AuditReport(
        metrics=metrics,
        metadata=_metadata(),
        projection={
            "xy": rng.normal(size=(m, 2)),
            "attributes": {
                "colour": np.array(["light", "dark", MATH])[np.arange(m) % 3],
                "sex": np.array(["female", XSS])[np.arange(m) % 2],
            },
        },
        homophily={
            "colour": {"light": rng.uniform(0, 2, 30), "dark": rng.uniform(0, 2, 30), "grey": []},
            "sex": {"female": rng.uniform(0, 2, 45), XSS: rng.uniform(0, 2, 45)},
        },
    )


@pytest.fixture(scope="module")
def bare_report(metrics) -> AuditReport:
    return AuditReport(metrics=metrics, metadata=_metadata())


@pytest.fixture(scope="module")
def page(full_report) -> str:
    """The HTML of the full report, rendered once (plots are the slow part)."""
    return render_html(full_report)


def _n_plotted(report: AuditReport) -> int:
    return sum(1 for m in report.metrics.values() if m.by_group)


class _StrictParser(HTMLParser):
    """Collects tags and checks that every non-void element is closed in order."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[dict] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _StrictParser:
    parser = _StrictParser()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed: {parser.stack}"
    return parser


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (0.0, "0.000"),
        (0.123456, "0.123"),
        (-2.71828, "-2.718"),
        (12.34567, "12.346"),
        (0.00123456, "0.00123"),
        (0.011, "0.0110"),
        (-0.0456789, "-0.0457"),
        (1.5e-7, "1.50e-07"),
        (123456.0, "1.23e+05"),
        (np.float32(0.5), "0.500"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_format_interval():
    assert format_interval(0.1, 0.25) == "[0.100, 0.250]"
    assert format_interval(None, None) == "—"


# ----------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def written(full_report, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("audit") / "a" / "b"  # created, parents included
    return out, write_report(full_report, out)


@pytest.fixture
def tiny_report(metrics) -> AuditReport:
    """No per-group metric, hence no plot: fast to write."""
    return AuditReport(metrics={"leakage_knn:colour": metrics["leakage_knn:colour"]}, metadata={})


def test_write_report_writes_exactly_three_files(full_report, written):
    out, paths = written
    assert paths == {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(full_report)
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_write_report_replaces_files_and_leaves_no_temporary(tiny_report, tmp_path):
    (tmp_path / "report.md").write_text("old")
    for _ in range(2):
        paths = write_report(tiny_report, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(tiny_report)


def test_report_object_knows_no_writer(tiny_report):
    # the result object is a plain record: writing it is fairmetric.report.write_report's job
    assert not hasattr(tiny_report, "save")


def test_write_report_rejects_a_file_as_directory(tiny_report, tmp_path):
    f = tmp_path / "not_a_dir"
    f.write_text("x")
    with pytest.raises(ValueError, match="directory"):
        write_report(tiny_report, f)


def test_write_report_writes_nothing_when_json_fails(tiny_report, tmp_path):
    report = AuditReport(metrics=tiny_report.metrics, metadata={"seconds": float("nan")})
    with pytest.raises(ValueError):
        write_report(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_json_round_trips(full_report, written):
    _, paths = written
    data = json.loads(paths["json"].read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data == json.loads(json.dumps(full_report.to_dict()))
    assert data["metadata"]["source"] == f"model {XSS}"
    recall = full_report["recall@1"]
    for attribute, groups in recall.by_group.items():
        for group, est in groups.items():
            got = data["metrics"]["recall@1"]["by_group"][attribute][group]
            assert got["value"] == est.value
            assert got["count"] == est.count
            assert (got["ci_low"], got["ci_high"]) == (est.ci_low, est.ci_high)
    grey = data["metrics"]["recall@1"]["by_group"]["colour"]["grey"]
    assert grey["value"] is None and grey["na_reason"] == NA_REASON
    diff = data["metrics"]["recall@1"]["difference"]["colour"]
    assert diff["value"] == pytest.approx(recall.difference("colour"))
    assert diff["ci_low"] is not None and diff["ci_low"] <= diff["ci_high"]
    worst = data["metrics"]["intra_class_alignment"]["worst_group"]["sex"]
    assert (worst["group"], worst["value"]) == full_report["intra_class_alignment"].worst_group(
        "sex"
    )
    assert data["metrics"]["leakage_knn:colour"]["by_group"] == {}


# ----------------------------------------------------------------------------- Markdown


def test_markdown_content(full_report):
    md = render_markdown(full_report)
    assert md.startswith("# ")
    assert "## Summary" in md and "## Run" in md
    assert md.index("## Summary") < md.index("## recall@1")
    for label in ("samples (N)", "dimension (D)", "distance", "bootstrap replicates", "seed"):
        assert f"| {label} |" in md
    assert "| attributes | colour, sex |" in md
    assert "| fairmetric version | 0.1.0 |" in md
    for name, metric in full_report.metrics.items():
        assert f"## {name}" in md
        for attribute, groups in metric.by_group.items():
            assert f"### {name} by {attribute}" in md
            for group, est in groups.items():
                cell = group.replace("<", "&lt;").replace(">", "&gt;")
                assert f"| {cell} | {est.count} |" in md
                if est.value is not None:
                    assert format_number(est.value) in md
                    assert format_interval(est.ci_low, est.ci_high) in md
    # the NA group: n/a with its reason
    assert f"| grey | 0 | n/a ({NA_REASON}) | — |" in md
    # gaps and worst group, with the direction
    recall = full_report["recall@1"]
    lo, hi = recall.gap_interval("difference", "colour")
    assert (
        f"| **difference** (max − min) |  | {format_number(recall.difference('colour'))} | "
        f"{format_interval(lo, hi)} |" in md
    )
    assert f"| **ratio** (min / max) |  | {format_number(recall.ratio('colour'))} |" in md
    worst, value = recall.worst_group("colour")
    assert worst == "dark"
    assert f"| **worst group** (higher is better) | 30 | dark: {format_number(value)} |" in md
    assert "| **worst group** (lower is better) |" in md
    # summary row: metric × attribute with overall, worst group and difference
    assert re.search(
        r"\| recall@1 \| higher \| colour \| "
        + re.escape(format_number(recall.overall.value))
        + r" \| dark: ",
        md,
    )
    assert "| leakage\\_knn:colour |" not in md  # underscores stay readable
    assert "| leakage_knn:colour | lower | — |" in md


def test_markdown_escapes_user_strings(full_report):
    md = render_markdown(full_report)
    assert "<script" not in md
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"Source: model {escaped}" in md
    assert f"| {escaped} | 35 |" in md  # the group row
    assert f"| dark×{escaped} |" in md  # intersectional group


# ----------------------------------------------------------------------------- HTML


def test_html_is_self_contained_and_well_formed(full_report, page):
    parser = _parse(page)
    assert page.count(PNG_URI) == _n_plotted(full_report) + 2  # + projection + homophily
    assert len(parser.imgs) == _n_plotted(full_report) + 2
    for img in parser.imgs:
        assert img["src"].startswith(PNG_URI)
        assert base64.b64decode(img["src"][len(PNG_URI) :])[:8] == b"\x89PNG\r\n\x1a\n"
        assert img["alt"]
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?data:)""", page)
    assert parser.tags.isdisjoint({"script", "link", "iframe", "object", "embed"})
    assert "<style>" in page


def test_html_escapes_user_strings(full_report, page):
    assert "<script" not in page.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>fairmetric embedding audit: model {escaped}</title>" in page
    assert f"<code>model {escaped}</code>" in page
    assert f"<td>{escaped}</td>" in page  # the group name
    assert f"<td>dark×{escaped}</td>" in page  # intersectional group


def test_html_has_the_markdown_content(full_report, page):
    text = "".join(_parse(page).text)
    for name, metric in full_report.metrics.items():
        assert name in text
        for groups in metric.by_group.values():
            for group, est in groups.items():
                assert group in text  # unescaped by the parser
                assert format_number(est.value) in text
    assert f"n/a ({NA_REASON})" in text
    assert "worst group (higher is better)" in text
    assert "worst group (lower is better)" in text
    assert "samples (N)" in text and "colour×sex" in text
    assert "Summary" in text and "Embedding projection" in text


def test_html_without_projection_or_homophily(bare_report):
    page = render_html(bare_report)
    _parse(page)
    assert page.count(PNG_URI) == _n_plotted(bare_report)
    # no empty sections: nothing to show, no heading
    assert "Embedding projection" not in page and "Neighbourhood homophily" not in page
    # the run details come after the results, collapsed
    assert page.index("<summary>Run details</summary>") > page.rindex("<h3>")
    assert '<details class="run">' in page


def test_markdown_run_details_come_after_the_results(bare_report):
    md = render_markdown(bare_report)
    assert md.index("## Run details") > md.rindex("### ")


def test_ratio_is_na_for_metrics_whose_values_can_be_negative(metrics):
    import dataclasses

    m = dataclasses.replace(metrics["recall@1"], ratio_defined=False)
    a = m.attributes[0]
    assert m.ratio(a) is None and m.gap_interval("ratio", a) == (None, None)
    assert m.difference(a) is not None  # the difference still means something
    entry = m.to_dict()["ratio"][a]
    assert entry["value"] is None and "can be negative" in entry["na_reason"]
    report = AuditReport(metrics={"m": m}, metadata={})
    assert "n/a (values can be negative)" in render_markdown(report)


# ----------------------------------------------------------------------------- plots


def test_figure_to_data_uri_is_png(metrics):
    uri = figure_to_data_uri(plot_group_bars(metrics["recall@1"]))
    assert uri.startswith(PNG_URI)
    assert base64.b64decode(uri[len(PNG_URI) :]).startswith(b"\x89PNG")


def test_report_plots_are_drawn_at_150_dpi_for_normal_zoom(metrics):
    """Readable at normal zoom: 150 dots per inch (the PNG says so), so a plot of the usual
    size is several hundred pixels wide rather than a blurry thumbnail."""
    import io

    from PIL import Image

    uri = figure_to_data_uri(plot_group_bars(metrics["recall@1"]))
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(PNG_URI) :])))
    assert round(image.info["dpi"][0]) == 150
    assert image.width >= 600


def test_plots_draw_awkward_names():
    """A group name that is invalid mathtext still draws (``$`` is escaped)."""
    n = 12
    codes = np.arange(n) % 2
    metric = group_metric_from_samples(
        "recall@1",
        num=np.linspace(0, 1, n),
        groupings=[Grouping("g", codes, [MATH, "b"])],
        higher_is_better=True,
    )
    figure_to_data_uri(plot_group_bars(metric))
    figure_to_data_uri(plot_homophily({"g": {MATH: np.ones(3), "b": np.array([np.nan])}}))
    figure_to_data_uri(
        plot_projection({"xy": np.zeros((n, 2)), "attributes": {"g": codes.astype(str)}})
    )
    figure_to_data_uri(plot_projection({"xy": np.zeros((n, 2)), "attributes": {}}))


def test_projection_panels_wrap_after_three():
    n = 10
    names = np.array(["a", "b"])[np.arange(n) % 2]
    fig = plot_projection({"xy": np.zeros((n, 2)), "attributes": {str(i): names for i in range(4)}})
    assert len(fig.axes) == 6  # 2 rows of 3, the last two hidden
    assert [ax.get_visible() and ax.axison for ax in fig.axes] == [True] * 4 + [False] * 2


def test_plot_inputs_are_validated(metrics):
    with pytest.raises(ValueError, match="no attribute"):
        plot_group_bars(metrics["leakage_knn:colour"])
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        plot_projection({"xy": np.zeros((5, 3)), "attributes": {}})
    with pytest.raises(ValueError, match="4 values for 5 points"):
        plot_projection({"xy": np.zeros((5, 2)), "attributes": {"a": ["x"] * 4}})
    with pytest.raises(ValueError, match="empty"):
        plot_homophily({})


# ----------------------------------------------------------------------------- docs


def test_schema_doc_example_matches_to_dict(full_report):
    """docs/report_schema.md's example has exactly the keys ``to_dict()`` writes."""
    doc = (Path(__file__).parents[2] / "docs" / "report_schema.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", doc, re.S).group(1))
    real = json.loads(full_report.to_json())
    assert example.keys() == real.keys()
    assert example["schema_version"] == SCHEMA_VERSION
    for key in example["metadata"]:
        assert f"| `{key}` |" in doc
    doc_metric = example["metrics"]["recall@1"]
    real_metric = real["metrics"]["recall@1"]
    assert doc_metric.keys() == real_metric.keys()
    assert doc_metric["overall"].keys() == real_metric["overall"].keys()
    assert (
        doc_metric["by_group"]["colour"]["light"].keys()
        == real_metric["by_group"]["colour"]["light"].keys()
    )
    assert (
        doc_metric["by_group"]["sex"]["male"].keys()
        == real_metric["by_group"]["colour"]["grey"].keys()
    )
    for kind in ("difference", "ratio", "worst_group"):
        assert doc_metric[kind]["colour"].keys() == real_metric[kind]["colour"].keys()


def test_render_summary_lists_every_metric_and_attribute(full_report):
    report = full_report
    text = render_summary(report)
    lines = text.splitlines()
    assert "difference [CI]" in lines[1]
    for name, metric in report.metrics.items():
        for attribute in metric.by_group or ["—"]:
            assert any(name in line and attribute in line for line in lines[3:]), (name, attribute)

"""``audit()`` end to end against slow references, plus its NA handling and input checks.

Every metric of a report is recomputed here from scratch: neighbours from a float64 numpy
argsort over all pairwise distances (query excluded), metrics with explicit loops over queries,
neighbours and pairs, and groups from the raw attribute strings (never from the library's
groupings). Data are small seeded Gaussian mixtures with random floats, so distances do not tie.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fairmetric
import fairmetric.audit
from fairmetric import __version__
from fairmetric.audit import AuditReport, audit
from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.embeddings import EmbeddingSet
from fairmetric.report import write_report

X = "×"
FAST = {"bootstrap": 0, "linear_probe": False, "projection_points": 0}

# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def gaussian_set(
    *, n_classes: int = 12, per_class: int = 7, seed: int = 0
) -> tuple[EmbeddingSet, dict[str, np.ndarray]]:
    """Gaussian-mixture vectors as embeddings, with ``colour`` (per class) and ``site`` (per
    sample) attributes given as strings; also returns the raw string columns."""
    ds = make_gaussian_groups(
        n_classes=n_classes, samples_per_class=per_class, dim=6, nuisance_dim=2, seed=seed
    )
    x = ds.inputs.numpy()
    rng = np.random.default_rng(seed + 100)
    colour = np.array(["light", "dark"])[ds.attribute("group")]
    site = rng.choice(["north", "south", "east"], size=len(x))
    data = EmbeddingSet(
        embeddings=x,
        labels=ds.labels,
        attributes={"colour": colour, "site": site},
    )
    return data, {"colour": colour, "site": site}


def groupings_of(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Group name of every sample per grouping, intersection included, from raw strings."""
    names = list(raw)
    out = dict(raw)
    if len(names) >= 2:
        out[X.join(names)] = np.array(
            [X.join(str(raw[a][i]) for a in names) for i in range(len(raw[names[0]]))]
        )
    return out


# --------------------------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------------------------


def ref_order(x: np.ndarray, metric: str) -> np.ndarray:
    """``(N, N-1)`` neighbour ids, nearest first, from float64 distances (query excluded)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    order = np.empty((n, n - 1), dtype=np.int64)
    for i in range(n):
        if metric == "cosine":
            d = np.array([-float(x[i] @ x[j]) for j in range(n)])
        else:
            d = np.array([float(np.sum((x[i] - x[j]) ** 2)) for j in range(n)])
        d[i] = np.inf
        order[i] = np.argsort(d, kind="stable")[: n - 1]
    return order


def ref_space(x: np.ndarray, metric: str) -> np.ndarray:
    """The vectors alignment and uniformity are measured on (unit rows under cosine)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def ref_recall(order, labels, k, members) -> float | None:
    hits = []
    for i in np.flatnonzero(members):
        if np.sum(labels == labels[i]) < 2:
            continue  # no other sample of its class: not a query of Recall@k
        hits.append(float(any(labels[j] == labels[i] for j in order[i][:k])))
    return _mean(hits)


def ref_map_at_r(order, labels, big_k, members) -> float | None:
    aps = []
    for i in np.flatnonzero(members):
        r = int(np.sum(labels == labels[i])) - 1
        if r < 1:
            continue
        found, ap = 0, 0.0
        for rank in range(1, min(r, big_k) + 1):
            if labels[order[i][rank - 1]] == labels[i]:
                found += 1
                ap += found / rank
        aps.append(ap / r)
    return _mean(aps)


def ref_alignment(xs, labels, members, *, same: bool) -> float | None:
    idx = np.flatnonzero(members)
    d2 = []
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            i, j = idx[a], idx[b]
            if (labels[i] == labels[j]) == same:
                d2.append(float(np.sum((xs[i] - xs[j]) ** 2)))
    return _mean(d2)


def ref_uniformity(xs, members, t: float = 2.0) -> float | None:
    idx = np.flatnonzero(members)
    e = []
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            e.append(math.exp(-t * float(np.sum((xs[idx[a]] - xs[idx[b]]) ** 2))))
    return math.log(np.mean(e)) if e else None


def ref_homophily_per_query(order, labels, values, hk) -> list[float | None]:
    n = len(labels)
    out: list[float | None] = []
    for i in range(n):
        other = [j for j in order[i][:hk] if labels[j] != labels[i]]
        if not other:
            out.append(None)
            continue
        base = np.sum(values == values[i]) / n
        out.append(sum(values[j] == values[i] for j in other) / len(other) / base)
    return out


def ref_votes(order, values, lk) -> list:
    votes = []
    for i in range(len(values)):
        nb = [values[j] for j in order[i][:lk]]
        tally = Counter(nb)
        # majority; a tie goes to the value seen first (at the nearer rank)
        votes.append(max(tally, key=lambda v: (tally[v], -nb.index(v))))
    return votes


def assert_close(got: float | None, want: float | None, what: str, rel: float = 2e-5) -> None:
    if want is None:
        assert got is None, f"{what}: expected NA, got {got}"
    else:
        assert got is not None, f"{what}: expected {want}, got NA"
        assert got == pytest.approx(want, rel=rel, abs=1e-6), what


def check_per_group(report: AuditReport, name: str, groups: dict[str, np.ndarray], ref) -> None:
    """``ref(mask) -> value`` must match the report overall and for every group it lists."""
    metric = report[name]
    n = len(next(iter(groups.values())))
    assert_close(metric.overall.value, ref(np.ones(n, dtype=bool)), f"{name} overall")
    assert set(metric.by_group) == set(groups)
    for grouping, per_sample in groups.items():
        assert set(metric.by_group[grouping]) == set(per_sample.tolist())
        for g, est in metric.by_group[grouping].items():
            assert_close(est.value, ref(per_sample == g), f"{name} {grouping}={g}")


# --------------------------------------------------------------------------------------------
# every metric against its reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_every_metric_matches_slow_reference(metric):
    data, raw = gaussian_set(seed=0)
    ks = [1, 2, 4, 8]
    report = audit(data, ks=ks, metric=metric, **FAST)
    meta = report.metadata
    labels = data.labels
    order = ref_order(data.embeddings, metric)
    xs = ref_space(data.embeddings, metric)
    groups = groupings_of(raw)
    assert meta["groupings"] == ["colour", "site", f"colour{X}site"]

    for k in ks:
        check_per_group(
            report, f"recall@{k}", groups, lambda m, k=k: ref_recall(order, labels, k, m)
        )
    big_k = meta["k_search"]
    assert big_k == max(8, 10, int(np.bincount(labels).max()) - 1)
    check_per_group(report, "map@r", groups, lambda m: ref_map_at_r(order, labels, big_k, m))
    check_per_group(
        report, "intra_class_alignment", groups, lambda m: ref_alignment(xs, labels, m, same=True)
    )
    check_per_group(
        report, "inter_class_alignment", groups, lambda m: ref_alignment(xs, labels, m, same=False)
    )
    # every group has < 1024 samples: the exact all-pairs path
    check_per_group(report, "uniformity", groups, lambda m: ref_uniformity(xs, m))

    for a in ("colour", "site"):
        values = raw[a]
        h = ref_homophily_per_query(order, labels, values, meta["homophily_k"])
        check_per_group(
            report,
            f"homophily:{a}",
            {a: values},
            lambda m, h=h: _mean([v for v, keep in zip(h, m) if keep and v is not None]),
        )
        votes = np.array(ref_votes(order, values, meta["leakage_k"]))
        leak = report[f"leakage_knn:{a}"]
        recalls = {}
        for g in np.unique(values):
            recalls[g] = float(np.mean(votes[values == g] == g))
            assert_close(leak.by_group[a][g].value, recalls[g], f"leakage {a}={g}")
        assert set(leak.by_group) == {a} and set(leak.by_group[a]) == set(recalls)
        # balanced accuracy: the mean of the per-group recalls
        assert_close(leak.overall.value, float(np.mean(list(recalls.values()))), f"leakage {a}")


def test_metric_names_and_groupings():
    data, _ = gaussian_set()
    report = audit(data, ks=[1, 4], bootstrap=0, projection_points=0)
    assert list(report.metrics) == [
        "recall@1",
        "recall@4",
        "map@r",
        "intra_class_alignment",
        "inter_class_alignment",
        "uniformity",
        "mean_resultant_length",
        "effective_rank",
        "homophily:colour",
        "leakage_knn:colour",
        "leakage_linear:colour",
        "homophily:site",
        "leakage_knn:site",
        "leakage_linear:site",
    ]
    inter = report["recall@1"].by_group[f"colour{X}site"]
    assert set(inter) == {
        f"{c}{X}{s}" for c in ("light", "dark") for s in ("north", "south", "east")
    }
    # homophily and leakage are sliced by their own attribute only
    assert list(report["homophily:site"].by_group) == ["site"]
    assert list(report["leakage_linear:colour"].by_group) == ["colour"]
    for a in ("colour", "site"):
        lin = report[f"leakage_linear:{a}"]
        assert 0 <= lin.overall.value <= 1
        values = list(lin.values(a).values())
        assert lin.overall.value == pytest.approx(np.mean(values))


def test_no_intersection_when_disabled_or_single_attribute():
    data, _ = gaussian_set()
    off = audit(data, intersectional=False, **FAST)
    assert off.metadata["groupings"] == ["colour", "site"]
    assert set(off["recall@1"].by_group) == {"colour", "site"}
    one = audit(data, attributes=["site"], **FAST)
    assert one.metadata["groupings"] == ["site"] and one.metadata["attributes"] == ["site"]
    assert "homophily:colour" not in one.metrics


def test_three_attributes_intersection_name():
    data, raw = gaussian_set()
    rng = np.random.default_rng(3)
    third = rng.choice(["y", "z"], size=len(data))
    data3 = EmbeddingSet(
        embeddings=data.embeddings, labels=data.labels, attributes={**raw, "age": third}
    )
    report = audit(data3, **FAST)
    assert report.metadata["groupings"][-1] == f"colour{X}site{X}age"
    names = set(report["recall@1"].by_group[f"colour{X}site{X}age"])
    assert names == {f"{c}{X}{s}{X}{a}" for c, s, a in zip(raw["colour"], raw["site"], third)}


def test_no_attributes_gives_overall_only():
    data, _ = gaussian_set()
    plain = EmbeddingSet(embeddings=data.embeddings, labels=data.labels)
    report = audit(plain, **FAST)
    order = ref_order(plain.embeddings, "cosine")
    assert report["recall@1"].by_group == {}
    assert_close(
        report["recall@1"].overall.value,
        ref_recall(order, plain.labels, 1, np.ones(len(plain), bool)),
        "recall@1",
    )
    json.loads(report.to_json())


@pytest.mark.parametrize("scale", [1e-3, 1e3, 1e20])
def test_cosine_audit_ignores_row_scale(scale):
    data, raw = gaussian_set()
    rng = np.random.default_rng(1)
    factors = scale * rng.uniform(0.2, 5.0, size=(len(data), 1))
    scaled = EmbeddingSet(
        embeddings=data.embeddings.astype(np.float64) * factors, labels=data.labels, attributes=raw
    )
    a = audit(data, bootstrap=0, projection_points=10)
    b = audit(scaled, bootstrap=0, projection_points=10)
    for name in a.metrics:
        assert_close(b[name].overall.value, a[name].overall.value, name, rel=1e-4)


def test_cosine_audit_accepts_tiny_nonzero_rows():
    data, raw = gaussian_set()
    scaled = EmbeddingSet(
        embeddings=data.embeddings.astype(np.float64) * 1e-25, labels=data.labels, attributes=raw
    )
    a = audit(data, bootstrap=0, projection_points=10)
    b = audit(scaled, bootstrap=0, projection_points=10)
    for name in a.metrics:
        assert_close(b[name].overall.value, a[name].overall.value, name, rel=1e-4)


# --------------------------------------------------------------------------------------------
# the callable module
# --------------------------------------------------------------------------------------------


def test_calling_the_module_is_audit():
    data, _ = gaussian_set()
    via_module = fairmetric.audit(data, bootstrap=20, seed=3, projection_points=0)
    direct = fairmetric.audit.audit(data, bootstrap=20, seed=3, projection_points=0)
    assert isinstance(via_module, AuditReport)
    one, two = via_module.to_dict(), direct.to_dict()
    one["metadata"].pop("seconds")
    two["metadata"].pop("seconds")
    assert one == two


def test_fairmetric_audit_reachable_after_plain_import():
    code = (
        "import fairmetric, numpy as np\n"
        "from fairmetric import EmbeddingSet\n"
        "x = np.random.default_rng(0).normal(size=(30, 4))\n"
        "e = EmbeddingSet(embeddings=x, labels=np.arange(30) % 3, attributes={'a': np.arange(30) % 2})\n"
        "r = fairmetric.audit(e, bootstrap=0, linear_probe=False, projection_points=0)\n"
        "print(r['recall@1'].overall.value)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------------------------
# bootstrap, metadata, serialisation
# --------------------------------------------------------------------------------------------


def _intervals(report: AuditReport) -> list:
    out = []
    for name, m in report.metrics.items():
        out.append((name, "overall", m.overall.ci_low, m.overall.ci_high))
        for a, groups in m.by_group.items():
            for g, e in groups.items():
                out.append((name, f"{a}={g}", e.ci_low, e.ci_high))
    return out


def test_bootstrap_intervals_present_and_reproducible():
    data, _ = gaussian_set()
    opts = {"linear_probe": False, "projection_points": 0, "bootstrap": 20}
    a = audit(data, seed=5, **opts)
    b = audit(data, seed=5, **opts)
    c = audit(data, seed=6, **opts)
    assert a.metadata["bootstrap"] == 20
    assert _intervals(a) == _intervals(b)
    assert _intervals(a) != _intervals(c)
    for name, where, lo, hi in _intervals(a):
        assert lo is not None and hi is not None, (name, where)
        assert lo <= hi, (name, where)
    # gap intervals too
    d = a.to_dict()["metrics"]["recall@1"]["difference"]["colour"]
    assert d["ci_low"] is not None and d["ci_low"] <= d["ci_high"]
    # point values do not depend on the bootstrap
    none = audit(data, seed=5, linear_probe=False, projection_points=0, bootstrap=0)
    for name in a.metrics:
        assert a[name].overall.value == none[name].overall.value


def test_no_intervals_without_bootstrap():
    data, _ = gaussian_set()
    report = audit(data, **FAST)
    assert report.metadata["bootstrap"] == 0
    assert all(lo is None and hi is None for *_, lo, hi in _intervals(report))
    d = report.to_dict()["metrics"]["map@r"]["difference"]["site"]
    assert d["ci_low"] is None and d["ci_high"] is None and d["value"] is not None


def test_metadata_fields():
    data, _ = gaussian_set()
    report = audit(data, ks=[2, 1], seed=4, bootstrap=0, source="my-embeddings")
    meta = report.metadata
    assert meta["n"] == len(data) and meta["dim"] == data.dim == 8
    assert meta["k"] == [1, 2]
    assert meta["index"] == "exact" and meta["metric"] == "cosine"
    assert meta["seed"] == 4 and meta["bootstrap"] == 0
    assert meta["fairmetric_version"] == __version__
    assert meta["source"] == "my-embeddings"
    assert meta["classes"] == len(np.unique(data.labels))
    assert meta["dropped_invalid"] == {"count": 0, "first_indices": []}
    assert meta["attributes"] == ["colour", "site"]
    # the source defaults to the set's own metadata
    tagged = EmbeddingSet(
        embeddings=data.embeddings,
        labels=data.labels,
        attributes=data.attributes,
        attribute_names=data.attribute_names,
        attribute_value_names=data.attribute_value_names,
        metadata={"source": "from-file.npz"},
    )
    assert audit(tagged, **FAST).metadata["source"] == "from-file.npz"


def test_json_is_strict_and_save_writes_three_files(tmp_path):
    data, _ = lonely_set()
    report = audit(data, bootstrap=20, projection_points=50)
    text = report.to_json()

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    doc = json.loads(text, parse_constant=refuse)
    assert doc["schema_version"] >= 1 and set(doc["metrics"]) == set(report.metrics)
    paths = write_report(report, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "report.html",
        "report.json",
        "report.md",
    ]
    assert json.loads(paths["json"].read_text()) == doc
    assert "recall@1" in paths["markdown"].read_text()
    assert "<html" in paths["html"].read_text().lower()


def test_projection():
    data, raw = gaussian_set()
    report = audit(data, bootstrap=0, linear_probe=False, projection_points=30)
    proj = report.projection
    assert proj["xy"].shape == (30, 2) and np.isfinite(proj["xy"]).all()
    assert set(proj["attributes"]) == {"colour", "site"}
    assert set(proj["attributes"]["site"]) <= set(raw["site"])
    assert audit(data, **FAST).projection is None


# --------------------------------------------------------------------------------------------
# NA handling
# --------------------------------------------------------------------------------------------


def lonely_set() -> tuple[EmbeddingSet, dict[str, np.ndarray]]:
    """40 samples of 8 classes at sites A/B, 3 singleton-class samples at site C, and one sample
    alone in colour 'solo'."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(8), 5), [100, 101, 102]])
    x = rng.normal(size=(len(labels), 5)) + 2 * rng.normal(size=(103, 5))[labels]
    site = np.array(["A", "B"] * 20 + ["C"] * 3)
    colour = np.array(["red", "blue"] * 21 + ["solo"])
    colour[0] = "solo"
    colour[-1] = "red"
    raw = {"site": site, "colour": colour}
    return EmbeddingSet(embeddings=x, labels=labels, attributes=raw), raw


def test_group_of_singleton_classes_is_na_with_reason():
    data, raw = lonely_set()
    report = audit(data, bootstrap=20, projection_points=0)
    for name in ("recall@1", "recall@8", "map@r"):
        est = report[name].by_group["site"]["C"]
        assert est.value is None and est.count == 0
        assert "another sample of its class" in est.na_reason
        assert report[name].by_group["site"]["A"].value is not None
        # the gap is taken over the groups that have a value
        vals = report[name].values("site")
        assert set(vals) == {"A", "B"}
        assert report[name].difference("site") == pytest.approx(abs(vals["A"] - vals["B"]))
    # the singleton classes are not queries of the overall value either
    order = ref_order(data.embeddings, "cosine")
    assert_close(
        report["recall@1"].overall.value,
        ref_recall(order, data.labels, 1, np.ones(len(data), bool)),
        "recall@1 overall",
    )
    assert report["recall@1"].overall.count == 40
    md = report.to_dict()["metrics"]["recall@1"]["by_group"]["site"]["C"]
    assert md["value"] is None and md["na_reason"]


def test_group_of_one_sample_has_na_pair_statistics():
    data, _ = lonely_set()
    report = audit(data, **FAST)
    for name in ("uniformity", "intra_class_alignment", "inter_class_alignment"):
        est = report[name].by_group["colour"]["solo"]
        assert est.value is None and est.na_reason, name
    # its one query still has a Recall@k (its class has members in other groups)
    assert report["recall@1"].by_group["colour"]["solo"].value is not None


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def _with_rows(data: EmbeddingSet, rows: dict[int, np.ndarray]) -> EmbeddingSet:
    x = data.embeddings.copy()
    for i, v in rows.items():
        x[i] = v
    return EmbeddingSet(
        embeddings=x,
        labels=data.labels,
        attributes=data.attributes,
        attribute_names=data.attribute_names,
        attribute_value_names=data.attribute_value_names,
        allow_invalid=True,
    )


def test_nan_inf_rows_are_refused_with_count_and_indices():
    data, _ = gaussian_set()
    bad = _with_rows(data, {3: np.nan, 17: np.inf, 40: -np.inf})
    with pytest.raises(ValueError, match=r"3 embedding row\(s\).*\[3, 17, 40\].*drop_invalid"):
        audit(bad, **FAST)


def test_drop_invalid_drops_and_reports():
    data, _ = gaussian_set()
    bad = _with_rows(data, {3: np.nan, 17: np.inf})
    report = audit(bad, drop_invalid=True, **FAST)
    meta = report.metadata
    assert meta["dropped_invalid"] == {"count": 2, "first_indices": [3, 17]}
    assert meta["n"] == len(data) - 2
    keep = np.setdiff1d(np.arange(len(data)), [3, 17])
    clean = audit(data.subset(keep), **FAST)
    for name in clean.metrics:
        assert report[name].overall.value == clean[name].overall.value


def test_zero_vectors_refused_under_cosine_but_fine_under_l2():
    data, _ = gaussian_set()
    zero = _with_rows(data, {5: 0.0, 9: 0.0})
    with pytest.raises(ValueError, match=r"2 embedding row\(s\).*zero vectors.*\[5, 9\]"):
        audit(zero, **FAST)
    dropped = audit(zero, drop_invalid=True, **FAST)
    assert dropped.metadata["dropped_invalid"] == {"count": 2, "first_indices": [5, 9]}
    l2 = audit(zero, metric="l2", **FAST)
    assert l2.metadata["n"] == len(data) and l2.metadata["dropped_invalid"]["count"] == 0
    # NaN and zero rows together: both counted
    both = _with_rows(data, {1: np.nan, 5: 0.0})
    with pytest.raises(ValueError, match=r"2 embedding row\(s\).*\[1, 5\]"):
        audit(both, **FAST)


def test_unknown_attribute_lists_valid_ones():
    data, _ = gaussian_set()
    with pytest.raises(ValueError, match=r"unknown attribute 'age'.*colour, site"):
        audit(data, attributes=["colour", "age"], **FAST)


def test_attribute_listed_twice():
    data, _ = gaussian_set()
    with pytest.raises(ValueError, match="listed twice"):
        audit(data, attributes=["site", "site"], **FAST)


def test_k_too_large_for_the_set():
    data, _ = gaussian_set()
    n = len(data)
    with pytest.raises(ValueError, match=rf"needs {n} neighbours.*only {n} embeddings"):
        audit(data, ks=[n], **FAST)
    small = data.subset(np.arange(8))
    with pytest.raises(ValueError, match=r"homophily_k=10.*only 8 embeddings.*below 8"):
        audit(small, ks=[1], **FAST)
    # lowering every neighbour count makes it work
    report = audit(small, ks=[1], homophily_k=3, leakage_k=3, map_k=2, **FAST)
    assert report.metadata["k_search"] == 3


@pytest.mark.parametrize("ks", [[], [0], [1, -2]])
def test_bad_ks(ks):
    data, _ = gaussian_set()
    with pytest.raises(ValueError, match="ks must be positive"):
        audit(data, ks=ks, **FAST)


def test_negative_bootstrap():
    data, _ = gaussian_set()
    with pytest.raises(ValueError, match="bootstrap must be >= 0"):
        audit(data, bootstrap=-1)


@pytest.mark.parametrize("thing", [np.zeros((10, 3)), {"embeddings": np.zeros((10, 3))}, None])
def test_not_an_embedding_set(thing):
    with pytest.raises(TypeError, match="takes an EmbeddingSet"):
        audit(thing)


def test_string_labels_and_group_names_come_through():
    data, raw = gaussian_set()
    names = np.array([f"person-{c:02d}" for c in range(20)])[data.labels]
    named = EmbeddingSet(embeddings=data.embeddings, labels=names, attributes=raw)
    assert named.label_names[0] == "person-00"
    report = audit(named, **FAST)
    plain = audit(data, **FAST)
    assert set(report["recall@1"].by_group["site"]) == {"north", "south", "east"}
    for name in plain.metrics:
        assert report[name].to_dict() == plain[name].to_dict()


def test_value_name_without_samples_is_not_a_group():
    """A declared attribute value that no sample has is simply absent from every grouping (no
    empty group, no NA row); the chance level counts the values present."""
    data, _ = gaussian_set()
    codes = np.where(data.attribute("site") == 1, 2, data.attribute("site"))  # no code 1 left
    declared = EmbeddingSet(
        embeddings=data.embeddings,
        labels=data.labels,
        attributes={"site": codes, "colour": data.attribute("colour")},
        attribute_value_names={
            "site": ["north", "nowhere", "south"],
            "colour": data.attribute_value_names["colour"],
        },
    )
    report = audit(declared, bootstrap=0, projection_points=0)
    for name, m in report.metrics.items():
        if "site" in m.by_group:
            assert set(m.by_group["site"]) == {"north", "south"}, name
        for grouping, groups in m.by_group.items():
            assert not any("nowhere" in g for g in groups), (name, grouping)
    assert report.metadata["leakage_chance"]["site"] == 0.5
    assert set(report.homophily["site"]) == {"north", "south"}


# --------------------------------------------------------------------------------------------
# property: Recall@1 per group equals the brute-force reference
# --------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(20, 60),
    n_classes=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    metric=st.sampled_from(["cosine", "l2"]),
)
def test_recall_at_1_per_group_property(n, n_classes, seed, metric):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, 4)) + rng.normal(size=(n_classes, 4))[labels]
    raw = {
        "tone": rng.choice(["t0", "t1", "t2"], size=n),
        "sex": rng.choice(["f", "m"], size=n),
    }
    data = EmbeddingSet(embeddings=x, labels=labels, attributes=raw)
    xs = ref_space(data.embeddings, metric)
    order = ref_order(data.embeddings, metric)
    # skip draws where the nearest two neighbours of a query (nearly) tie in float32
    for i in range(n):
        d = [float(np.sum((xs[i] - xs[j]) ** 2)) for j in order[i][:2]]
        assume(d[1] - d[0] > 1e-5 * max(d[1], 1e-12))
    report = audit(data, ks=[1], metric=metric, homophily_k=3, leakage_k=3, map_k=1, **FAST)
    check_per_group(
        report, "recall@1", groupings_of(raw), lambda m: ref_recall(order, labels, 1, m)
    )


def test_intersection_groups_with_the_separator_in_their_names_stay_apart():
    rng = np.random.default_rng(0)
    n = 40
    x = rng.normal(size=(n, 4)).astype(np.float32)
    p = np.array(["a×b", "a"], dtype=object)[np.arange(n) % 2]
    q = np.array(["c", "b×c"], dtype=object)[(np.arange(n) // 2) % 2]
    data = EmbeddingSet(embeddings=x, labels=np.arange(n) % 4, attributes={"p": p, "q": q})
    report = audit(data, ks=(1,), homophily_k=3, leakage_k=3, **FAST)
    groups = report["recall@1"].by_group[f"p{X}q"]
    assert len(groups) == 4 and sum(e.count for e in groups.values()) == n


def test_duplicate_group_names_are_a_clear_error():
    rng = np.random.default_rng(0)
    data = EmbeddingSet(
        embeddings=rng.normal(size=(20, 3)),
        labels=np.arange(20) % 4,
        attributes={"colour": np.arange(20) % 2},
    )
    # EmbeddingSet refuses repeated names; audit's own check guards a set changed afterwards
    data.attribute_value_names["colour"] = ["x", "x"]
    with pytest.raises(ValueError, match=r"'colour'.*several groups are named \['x'\]"):
        audit(data, ks=(1,), homophily_k=3, leakage_k=3, **FAST)

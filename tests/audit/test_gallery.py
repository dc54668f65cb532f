"""Query/gallery audits (PML's query/reference, OML's query/gallery): every query ranks the
gallery; checked against a brute-force loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet


def make(per: int, seed: int, ids: int = 12, names=None) -> EmbeddingSet:
    centres = np.random.default_rng(0).normal(size=(ids, 6))
    rng = np.random.default_rng(seed)
    x = np.repeat(centres, per, axis=0) + 0.8 * rng.normal(size=(ids * per, 6))
    names = names if names is not None else [f"id{i}" for i in range(ids)]
    return EmbeddingSet(
        embeddings=x.astype(np.float32),
        labels=np.repeat(names, per),
        attributes={"g": np.repeat(["a", "b"] * (ids // 2), per)},
    )


def reference(query: EmbeddingSet, gallery: EmbeddingSet, ks, metric):
    """Recall@k and AP@R per query by explicit loops over the gallery (float64 of float32)."""
    qx = np.asarray(query.embeddings, np.float32).astype(np.float64)
    gx = np.asarray(gallery.embeddings, np.float32).astype(np.float64)
    qn = np.asarray(query.label_names)[query.labels]
    gn = np.asarray(gallery.label_names)[gallery.labels]
    hits = {k: [] for k in ks}
    ap = []
    for i in range(len(qx)):
        if metric == "cosine":
            s = [qx[i] @ g / (np.linalg.norm(qx[i]) * np.linalg.norm(g)) for g in gx]
        else:
            s = [-((qx[i] - g) ** 2).sum() for g in gx]
        order = np.argsort(-np.array(s), kind="stable")
        rel = [gn[j] == qn[i] for j in order]
        for k in ks:
            hits[k].append(float(any(rel[:k])))
        r = sum(rel)
        ap.append(sum(np.mean(rel[: j + 1]) for j in range(r) if rel[j]) / r if r else 0.0)
    return hits, np.array(ap)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_recall_and_map_match_a_brute_force_loop(metric):
    query, gallery = make(2, 1), make(3, 2)
    report = audit(
        query,
        gallery=gallery,
        ks=(1, 3),
        metric=metric,
        bootstrap=0,
        linear_probe=False,
        projection_points=0,
        min_group_size=1,
    )
    hits, ap = reference(query, gallery, (1, 3), metric)
    group = np.asarray(query.attribute_value_names["g"])[query.attribute("g")]
    for name in ("a", "b"):
        sel = group == name
        for k in (1, 3):
            assert report[f"recall@{k}"].values("g")[name] == pytest.approx(
                np.mean(np.array(hits[k])[sel]), abs=1e-12
            )
        assert report["map@r"].values("g")[name] == pytest.approx(ap[sel].mean(), abs=1e-12)
    assert report.metadata["gallery"] == {"n": len(gallery)}


def test_labels_and_groups_are_matched_by_name_not_by_code():
    query, gallery = make(2, 1), make(3, 2)
    names = np.asarray(gallery.label_names)[gallery.labels]
    groups = np.asarray(gallery.attribute_value_names["g"])[gallery.attribute("g")]
    order = sorted(set(names.tolist()), reverse=True)  # other codes for the same names
    recoded = EmbeddingSet(
        embeddings=gallery.embeddings,
        labels=np.array([order.index(n) for n in names]),
        label_names=order,
        attributes={"g": np.where(groups == "a", 1, 0)},
        attribute_value_names={"g": ["b", "a"]},
    )
    kw = dict(ks=(1, 2), bootstrap=0, linear_probe=False, projection_points=0, min_group_size=1)
    a = audit(query, gallery=gallery, **kw)
    b = audit(query, gallery=recoded, **kw)
    for name in ("recall@1", "recall@2", "map@r", "homophily:g", "leakage_knn:g"):
        assert a[name].values("g") == b[name].values("g"), name
    with pytest.raises(ValueError, match="no label of the queries appears in the gallery"):
        audit(query, gallery=make(3, 2, names=[f"x{i}" for i in range(12)]), bootstrap=0)
    with pytest.raises(ValueError, match="dimension"):
        other = EmbeddingSet(embeddings=np.ones((4, 3), np.float32), labels=[0, 0, 1, 1])
        audit(query, gallery=other, bootstrap=0)


def test_cli_gallery_flag(tmp_path):
    query, gallery = make(2, 1), make(3, 2)
    query.save(tmp_path / "q.npz")
    gallery.save(tmp_path / "g.npz")
    argv = ["audit", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--k", "1"]
    argv += ["--bootstrap", "0", "--no-linear-probe", "--no-progress", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    meta = json.loads((tmp_path / "o" / "report.json").read_text())["metadata"]
    assert meta["gallery"] == {"n": 36}

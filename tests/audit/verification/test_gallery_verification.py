"""Verification against a separate gallery: cross pairs against itertools loops (exhaustive and
sampled: kind, size, uniformity), rates and thresholds against a brute-force loop, rank-1
identification against a loop and against the query/gallery audit's Recall@1, hard impostors,
name matching, and bad input."""

from __future__ import annotations

import json
from collections import Counter
from itertools import product

import numpy as np
import pytest
from scipy.stats import chi2

from fairmetric import EmbeddingSet
from fairmetric.audit import audit
from fairmetric.audit.verification import threshold_at_fmr, verification_audit
from fairmetric.audit.verification.gallery import (
    hard_cross_pairs,
    sample_cross_pairs,
    stack_probes_and_gallery,
)
from fairmetric.audit.verification.identification import identification_errors

# rows 0..4 probes, 5..11 gallery; identity 5 only in the gallery, identity 4 only a probe
LABELS = np.array([0, 1, 1, 2, 4, 0, 0, 1, 2, 3, 5, 5])
GROUPS = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1])
N_PROBES = 5
BIG = 10_000


def _pairs(p) -> list[tuple[int, int]]:
    return sorted(zip(p.i.tolist(), p.j.tolist()))


def _cross(labels, same, rows_p=None, rows_g=None):
    rows_p = range(N_PROBES) if rows_p is None else rows_p
    rows_g = range(N_PROBES, len(labels)) if rows_g is None else rows_g
    return sorted((a, b) for a, b in product(rows_p, rows_g) if (labels[a] == labels[b]) == same)


def test_exhaustive_cross_pairs_are_every_probe_gallery_pair_of_their_kind():
    p = sample_cross_pairs(
        LABELS, {"g": GROUPS}, N_PROBES, genuine=BIG, impostor=BIG, same_group=BIG
    )
    assert _pairs(p.genuine) == _cross(LABELS, True) and p.genuine.exhaustive
    assert _pairs(p.impostor) == _cross(LABELS, False) and p.impostor.exhaustive
    assert p.genuine.available == 5 and p.impostor.available == 5 * 7 - 5
    for g in (0, 1):
        rows_p = [r for r in range(N_PROBES) if GROUPS[r] == g]
        rows_g = [r for r in range(N_PROBES, 12) if GROUPS[r] == g]
        s = p.same_group["g"][g]
        assert _pairs(s) == _cross(LABELS, False, rows_p, rows_g) and s.exhaustive
        assert s.available == len(s)
    # every pair is (probe, gallery sample)
    assert (p.impostor.i < N_PROBES).all() and (p.impostor.j >= N_PROBES).all()


def _chi2_ok(counts, probs):
    total = sum(counts)
    stat = sum((c - total * q) ** 2 / (total * q) for c, q in zip(counts, probs))
    assert chi2.sf(stat, len(counts) - 1) > 1e-6, (counts, stat)


def test_sampled_cross_impostors_are_uniform():
    ref = _cross(LABELS, False)
    freq: Counter = Counter()
    for seed in range(400):
        p = sample_cross_pairs(
            LABELS, {}, N_PROBES, genuine=99, impostor=20, same_group=1, seed=seed
        )
        assert not p.impostor.exhaustive and len(p.impostor) == 20
        assert p.impostor.available == len(ref)
        freq.update(_pairs(p.impostor))
    assert set(freq) == set(ref)
    _chi2_ok([freq[q] for q in ref], [1 / len(ref)] * len(ref))


def test_sampled_cross_genuine_pairs_are_uniform_over_pairs():
    labels = np.array([0, 0, 1, 2, 0, 1, 1, 1, 2])  # probes 0..3: cross genuine 2·1 + 1·3 + 1·1
    ref = _cross(labels, True, range(4), range(4, 9))
    assert len(ref) == 6
    freq: Counter = Counter()
    for seed in range(600):
        p = sample_cross_pairs(labels, {}, 4, genuine=5, impostor=99, same_group=1, seed=seed)
        assert not p.genuine.exhaustive and len(p.genuine) == 5
        assert (labels[p.genuine.i] == labels[p.genuine.j]).all()
        freq.update(_pairs(p.genuine))
    assert set(freq) == set(ref)
    _chi2_ok([freq[q] for q in ref], [1 / len(ref)] * len(ref))


def _sets(seed=0, n=40, per=4, flip=False):
    """Probes (one sample per identity) and a gallery (the rest), groups A/B; the gallery's
    rows shuffled and its names in another code order (matched by name)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n, 6))
    x = np.repeat(centres, per, axis=0) + 0.6 * rng.normal(size=(n * per, 6))
    lab = np.repeat([f"id{i:02d}" for i in range(n)], per)
    grp = np.repeat(["A"] * (n // 2) + ["B"] * (n - n // 2), per)
    probe = np.tile([True] + [False] * (per - 1), n)
    order = rng.permutation(int((~probe).sum())) if flip else np.arange(int((~probe).sum()))
    probes = EmbeddingSet(embeddings=x[probe], labels=lab[probe], attributes={"g": grp[probe]})
    if not flip:
        gallery = EmbeddingSet(
            embeddings=x[~probe], labels=lab[~probe], attributes={"g": grp[~probe]}
        )
        return probes, gallery
    names = sorted(set(lab))[::-1]  # the gallery's codes in the reverse order
    codes = np.array([names.index(v) for v in lab[~probe][order]])
    gallery = EmbeddingSet(
        embeddings=x[~probe][order],
        labels=codes,
        label_names=names,
        attributes={"g": (grp[~probe][order] == "A").astype(int)},
        attribute_value_names={"g": ["B", "A"]},
    )
    return probes, gallery


def _cos(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_rates_and_threshold_match_a_brute_force_loop():
    probes, gallery = _sets()
    report = verification_audit(probes, gallery=gallery, fmr=[1e-2], bootstrap=0)
    gen, imp, same = [], [], {"A": [], "B": []}
    gen_by = {"A": [], "B": []}
    for a in range(len(probes)):
        for b in range(len(gallery)):
            s = _cos(probes.embeddings[a], gallery.embeddings[b])
            ga = probes.attribute_value_names["g"][probes.attribute("g")[a]]
            gb = gallery.attribute_value_names["g"][gallery.attribute("g")[b]]
            if probes.label_names[probes.labels[a]] == gallery.label_names[gallery.labels[b]]:
                gen.append(s)
                gen_by[ga].append(s)
            else:
                imp.append(s)
                if ga == gb:
                    same[ga].append(s)
    tau = threshold_at_fmr(np.array(imp), 1e-2)
    assert report["threshold@1e-2"].overall.value == pytest.approx(tau, abs=1e-12)
    for g in ("A", "B"):
        fmr = float(np.mean(np.array(same[g]) >= tau))
        fnmr = float(np.mean(np.array(gen_by[g]) < tau))
        assert report["fmr@1e-2"].by_group["g"][g].value == pytest.approx(fmr, abs=1e-12)
        assert report["fnmr@1e-2"].by_group["g"][g].value == pytest.approx(fnmr, abs=1e-12)
    pairs = report.metadata["verification"]["pairs"]
    assert (pairs["genuine"], pairs["impostor"]) == (len(gen), len(imp))
    gal = report.metadata["verification"]["gallery"]
    assert gal == {"probes": len(probes), "n": len(gallery)}


def test_the_gallerys_row_order_and_code_order_do_not_matter():
    probes, gallery = _sets()
    a = verification_audit(probes, gallery=gallery, fmr=[1e-2], bootstrap=0)
    probes, gallery = _sets(flip=True)
    b = verification_audit(probes, gallery=gallery, fmr=[1e-2], bootstrap=0)
    for key in ("fmr@1e-2", "fnmr@1e-2", "threshold@1e-2"):
        for g in ("A", "B"):
            va, vb = a[key].by_group["g"][g].value, b[key].by_group["g"][g].value
            assert va == pytest.approx(vb, abs=1e-12)
    ia = a.metadata["verification"]["identification"]
    ib = b.metadata["verification"]["identification"]
    assert ia == ib


def test_identification_against_a_loop_and_the_gallery_audits_recall():
    probes, gallery = _sets(seed=3)
    report = verification_audit(probes, gallery=gallery, fmr=[1e-2], bootstrap=0)
    ident = report.metadata["verification"]["identification"]["g"]
    errors = {"A": 0.0, "B": 0.0}
    for a in range(len(probes)):
        scores = [_cos(probes.embeddings[a], gallery.embeddings[b]) for b in range(len(gallery))]
        best = max(scores)
        tied = [b for b, s in enumerate(scores) if s == best]
        ga = probes.attribute_value_names["g"][probes.attribute("g")[a]]
        for b in tied:
            if gallery.labels[b] != probes.labels[a]:  # same names, same codes here
                errors[ga] += 1 / len(tied)
    for g in ("A", "B"):
        assert ident["rank1_error"][g] == pytest.approx(errors[g] / ident["queries"][g], abs=1e-12)
    recall = audit(probes, gallery=gallery, ks=(1,), bootstrap=0, linear_probe=False)["recall@1"]
    for g in ("A", "B"):
        assert ident["rank1_error"][g] == pytest.approx(
            1 - recall.by_group["g"][g].value, abs=1e-12
        )


def test_probes_not_enrolled_are_not_identification_queries():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    labels = np.array([0, 7, 0, 1])  # probe of identity 7 has no gallery sample
    got = identification_errors(x, labels, {"g": np.array([0, 0, 0, 0])}, "cosine", n_probes=2)
    assert got["g"]["queries"].tolist() == [1.0]
    assert got["g"]["matrix"][0, 0] == 0.0


def test_hard_cross_pairs_are_each_probes_k_most_similar_other_identities():
    probes, gallery = _sets(seed=5, n=12)
    both = stack_probes_and_gallery(probes, gallery, ["g"])
    x, labels, n_p = both.embeddings, both.labels, len(probes)
    rows_p, rows_g = np.arange(n_p), np.arange(n_p, len(both))
    got = hard_cross_pairs(x, labels, rows_p, rows_g, 2, "cosine")
    want = []
    for a in rows_p:
        cand = sorted(
            ((_cos(x[a], x[b]), b) for b in rows_g if labels[b] != labels[a]), reverse=True
        )
        kth = cand[1][0]
        want += [(int(a), int(b)) for s, b in cand if s >= kth]
    assert _pairs(got) == sorted(want)


def test_gallery_names_join_by_name_and_extra_names_get_new_codes():
    probes = EmbeddingSet(embeddings=np.eye(3), labels=["x", "y", "z"], attributes={"g": ["a"] * 3})
    gallery = EmbeddingSet(
        embeddings=np.eye(3)[[2, 0, 1]], labels=["z", "x", "w"], attributes={"g": ["b", "a", "a"]}
    )
    both = stack_probes_and_gallery(probes, gallery, ["g"])
    assert [both.label_names[c] for c in both.labels] == ["x", "y", "z", "z", "x", "w"]
    values = both.attribute_value_names["g"]
    assert [values[c] for c in both.attribute("g")] == ["a", "a", "a", "b", "a", "a"]


def test_bad_gallery_input_gets_clear_errors(tmp_path):
    probes, gallery = _sets()
    with pytest.raises(ValueError, match="dimension 3"):
        verification_audit(probes, gallery=EmbeddingSet(embeddings=np.ones((2, 3)), labels=[0, 1]))
    with pytest.raises(ValueError, match="gallery has no attribute 'g'"):
        verification_audit(
            probes,
            gallery=EmbeddingSet(
                embeddings=gallery.embeddings,
                labels=gallery.labels,
                label_names=gallery.label_names,
            ),
        )
    strangers = EmbeddingSet(
        embeddings=gallery.embeddings,
        labels=[f"other{i}" for i in range(len(gallery))],
        attributes={"g": gallery.attribute("g")},
        attribute_value_names=gallery.attribute_value_names,
    )
    with pytest.raises(ValueError, match="no identity of the probes is in the gallery"):
        verification_audit(probes, gallery=strangers)
    bad = gallery.embeddings.copy()
    bad[3] = np.nan
    nan_gallery = EmbeddingSet(
        embeddings=bad,
        labels=gallery.labels,
        label_names=gallery.label_names,
        attributes={"g": gallery.attribute("g")},
        attribute_value_names=gallery.attribute_value_names,
        allow_invalid=True,
    )
    with pytest.raises(ValueError, match="1 gallery rows contain NaN/Inf"):
        verification_audit(probes, gallery=nan_gallery)
    (tmp_path / "pairs.csv").write_text("a,b\n0,1\n")
    with pytest.raises(ValueError, match="without a gallery"):
        verification_audit(probes, gallery=gallery, pairs_file=tmp_path / "pairs.csv")
    with pytest.raises(ValueError, match="must be an EmbeddingSet"):
        verification_audit(probes, gallery=gallery.embeddings)


def test_cli_verification_with_a_gallery(tmp_path):
    from fairmetric.cli import main

    probes, gallery = _sets()
    probes.save(tmp_path / "p.npz")
    gallery.save(tmp_path / "g.npz")
    argv = ["audit", str(tmp_path / "p.npz"), "--gallery", str(tmp_path / "g.npz"), "--k", "1"]
    argv += ["--verification", "--fmr", "1e-2", "--bootstrap", "0", "--no-linear-probe"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "o")]) == 0
    meta = json.loads((tmp_path / "o" / "report.json").read_text())["metadata"]
    assert meta["verification"]["gallery"] == {"probes": len(probes), "n": len(gallery)}
    direct = verification_audit(probes, gallery=gallery, fmr=[1e-2], bootstrap=0)
    assert meta["verification"]["pairs"] == direct.metadata["verification"]["pairs"]
    assert (
        meta["verification"]["identification"] == direct.metadata["verification"]["identification"]
    )
    md = (tmp_path / "o" / "report.md").read_text()
    assert f"one of the {len(probes)} probes and one of the {len(gallery)} gallery samples" in md

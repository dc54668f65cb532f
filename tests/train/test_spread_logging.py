"""Each epoch's evaluation logs the embedding spread (mean resultant length, effective rank;
METHODS.md §5) beside Recall@k, with the audit's values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit import audit
from fairmetric.embeddings import EmbeddingSet
from fairmetric.models import embed_dataset, load_embedder
from fairmetric.train import build_data, load_config, train
from fairmetric.train.evaluate import SPREAD_KEYS, evaluate_embeddings, spread_by_group
from tests.audit.test_spread import ref_erank, ref_mrl
from tests.conftest import GAUSSIAN


def test_a_short_run_logs_the_spread_each_epoch(tmp_path):
    cfg = load_config(None, GAUSSIAN + ["train.epochs=1"])
    out = tmp_path / "run"
    result = train(cfg, out, progress=False, log=lambda s: None)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    dim = cfg.model.embedding_dim
    for line in lines:
        metrics = line["metrics"]
        assert list(metrics) == [*(f"recall@{k}" for k in cfg.train.recall_k), *SPREAD_KEYS]
        for key in SPREAD_KEYS:
            entry = metrics[key]
            assert set(entry) == {"overall", "by_group", "gap", "ratio"}
            groups = entry["by_group"]["group"]
            assert set(groups) == set(metrics["recall@1"]["by_group"]["group"])
            values = list(groups.values())
            assert entry["gap"]["group"] == pytest.approx(max(values) - min(values))
            assert entry["ratio"]["group"] == pytest.approx(min(values) / max(values))
        assert all(
            0 <= v <= 1 for v in metrics["mean_resultant_length"]["by_group"]["group"].values()
        )
        assert all(1 <= v <= dim for v in metrics["effective_rank"]["by_group"]["group"].values())
    # the logged values are the audit's for the exported model's test embeddings
    emb = embed_dataset(load_embedder(result["model_dir"]), build_data(cfg)["test"], device="cpu")
    assert evaluate_embeddings(emb, cfg.train.recall_k) == lines[-1]["metrics"]
    report = audit(emb, bootstrap=0, projection_points=0, linear_probe=False, ks=(1,))
    for key in SPREAD_KEYS:
        assert report[key].values("group") == lines[-1]["metrics"][key]["by_group"]["group"]
        assert report[key].overall.value == pytest.approx(
            lines[-1]["metrics"][key]["overall"], rel=1e-12
        )


def test_spread_by_group_matches_the_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    colour = np.array(["light"] * 17 + ["dark"] * 12 + ["grey"])
    site = np.array(["north", "south"] * 15)
    emb = EmbeddingSet(
        embeddings=x, labels=np.arange(30) % 5, attributes={"colour": colour, "site": site}
    )
    got = spread_by_group(emb)
    # the rows the audit measures under cosine: normalised in float64, stored as float32
    x64 = x.astype(np.float64)
    unit = (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).astype(np.float32)
    assert got["mean_resultant_length"]["overall"] == pytest.approx(ref_mrl(unit), rel=1e-12)
    assert got["effective_rank"]["overall"] == pytest.approx(ref_erank(unit), rel=1e-10)
    for a, col in (("colour", colour), ("site", site)):
        for g in np.unique(col):
            mrl = got["mean_resultant_length"]["by_group"][a][g]
            assert mrl == pytest.approx(ref_mrl(unit[col == g]), rel=1e-12)
            want = ref_erank(unit[col == g])
            er = got["effective_rank"]["by_group"][a][g]
            assert er is None if want is None else er == pytest.approx(want, rel=1e-10)
    # a single-sample group has no effective rank; the gap and ratio leave it out
    assert got["effective_rank"]["by_group"]["colour"]["grey"] is None
    present = [got["effective_rank"]["by_group"]["colour"][g] for g in ("light", "dark")]
    assert got["effective_rank"]["gap"]["colour"] == pytest.approx(max(present) - min(present))
    assert got["effective_rank"]["ratio"]["colour"] == pytest.approx(min(present) / max(present))
    # raw embeddings under l2: scaling them changes nothing
    scaled = EmbeddingSet(
        embeddings=(x * 50).astype(np.float32), labels=emb.labels, attributes={"site": site}
    )
    a = spread_by_group(emb, ["site"], metric="l2")
    b = spread_by_group(scaled, metric="l2")
    for key in SPREAD_KEYS:
        for g, v in a[key]["by_group"]["site"].items():
            assert b[key]["by_group"]["site"][g] == pytest.approx(v, rel=1e-5)
    none = spread_by_group(emb, attributes=[])
    assert none["effective_rank"]["by_group"] == {} and none["effective_rank"]["gap"] == {}


def test_spread_gaps_leave_out_groups_below_min_group_size():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    colour = np.array(["light"] * 17 + ["dark"] * 12 + ["grey"])
    emb = EmbeddingSet(embeddings=x, labels=np.arange(30) % 5, attributes={"colour": colour})
    every = spread_by_group(emb, min_group_size=1)["mean_resultant_length"]
    default = spread_by_group(emb)["mean_resultant_length"]  # 10, as in the audit
    strict = spread_by_group(emb, min_group_size=13)["mean_resultant_length"]
    values = every["by_group"]["colour"]
    assert values["grey"] == pytest.approx(1.0)  # one unit row: its own mean direction
    assert default["by_group"] == strict["by_group"] == every["by_group"]  # values unchanged
    assert every["gap"]["colour"] == pytest.approx(max(values.values()) - min(values.values()))
    assert "not_compared" not in every
    kept = [values["light"], values["dark"]]
    assert default["gap"]["colour"] == pytest.approx(max(kept) - min(kept))
    assert default["ratio"]["colour"] == pytest.approx(min(kept) / max(kept))
    assert default["not_compared"] == {"colour": ["grey"]}
    assert strict["gap"]["colour"] is None and strict["ratio"]["colour"] is None
    assert strict["not_compared"] == {"colour": ["dark", "grey"]}
    report = audit(emb, bootstrap=0, projection_points=0, linear_probe=False, ks=(1,))
    assert report["mean_resultant_length"].difference("colour") == default["gap"]["colour"]

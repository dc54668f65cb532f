"""User pair lists (`--pairs FILE`, LFW / BFW / RFW-style protocols) are audited as given."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairmetric.audit.verification import verification_audit
from fairmetric.audit.verification.pairs import read_pair_file
from fairmetric.audit.verification.scores import pair_scores
from fairmetric.audit.verification.threshold import threshold_at_fmr
from fairmetric.cli import main
from fairmetric.embeddings import EmbeddingSet


def small() -> EmbeddingSet:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    labels = np.repeat(np.arange(8), 3)
    group = np.repeat(np.array(["f", "m"] * 4), 3)
    return EmbeddingSet(embeddings=x, labels=labels, attributes={"sex": group})


def write(tmp_path, text: str):
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    return path


PAIRS = "a,b,same\n0,1,1\n3,4,1\n6,8,1\n0,3,0\n0,6,0\n1,7,0\n3,9,0\n4,10,0\n2,12,0\n"


def test_listed_pairs_are_audited_as_given(tmp_path):
    data = small()
    path = write(tmp_path, PAIRS)
    report = verification_audit(data, fmr=[0.2], bootstrap=0, pairs_file=path)
    x = np.asarray(data.embeddings)
    gi, gj = np.array([0, 3, 6]), np.array([1, 4, 8])
    ii, ij = np.array([0, 0, 1, 3, 4, 2]), np.array([3, 6, 7, 9, 10, 12])
    imp = pair_scores(x, ii, ij)
    tau = threshold_at_fmr(imp, 0.2)
    assert report["threshold@2e-1"].overall.value == tau
    assert report["fmr@2e-1"].overall.value == float((imp >= tau).mean())
    assert report["fnmr@2e-1"].overall.value == float((pair_scores(x, gi, gj) < tau).mean())
    # same-group impostors: both rows in one group (f: identities 0, 2, 4, 6 -> rows 0-2, 6-8 ...)
    codes = np.asarray(data.attribute("sex"))
    same = codes[ii] == codes[ij]
    for g, name in enumerate(data.attribute_value_names["sex"]):
        sel = same & (codes[ii] == g)
        expected = float((imp[sel] >= tau).mean()) if sel.any() else None
        assert report["fmr@2e-1"].values("sex").get(name) == expected
    meta = report.metadata["verification"]
    assert meta["pairs"]["genuine"] == 3 and meta["pairs"]["impostor"] == 6
    assert meta["pairs_file"] == str(path)


def test_without_a_same_column_the_labels_decide(tmp_path):
    data = small()
    pairs = read_pair_file(write(tmp_path, "a,b\n0,1\n0,3\n"), data.labels, {})
    assert pairs.genuine.i.tolist() == [0] and pairs.impostor.j.tolist() == [3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y\n0,1\n", r"line 1: expected a header 'a,b\[,same\]' .*, got 'x,y'"),
        ("a,b,same\n0,1,1\n0,zz,0\n", "line 3: a and b must be 0-based row indices"),
        ("a,b,same\n0,1,1\n0,99,0\n", "line 3: row index out of range 0..23"),
        ("a,b,same\n0,1,1\n2,2,0\n", "line 3: a pair of row 2 with itself"),
        ("a,b,same\n0,1,1\n0,3,maybe\n", "same must be 1/0"),
        ("a,b,same\n0,1,0\n", "line 2: the file says rows 0 and 1 are different identities"),
        ("a,b,same\n0,1,1\n", "1 genuine and 0 impostor pairs"),
    ],
)
def test_bad_pair_files_name_the_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_pair_file(write(tmp_path, text), small().labels, {})


def test_cli_pairs_flag(tmp_path, capsys):
    npz = tmp_path / "emb.npz"
    small().save(npz)
    path = write(tmp_path, PAIRS)
    argv = ["audit", str(npz), "--verification", "--fmr", "0.2", "--pairs", str(path)]
    argv += ["--bootstrap", "0", "--no-linear-probe", "--no-progress", "--min-group-size", "1"]
    assert main([*argv, "--k", "1", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["metadata"]["verification"]["pairs"]["impostor"] == 6
    assert "Pairs as listed in" in (tmp_path / "out" / "report.md").read_text()
    capsys.readouterr()
    assert main(["audit", str(npz), "--pairs", str(path)]) == 2
    assert "add --verification" in capsys.readouterr().err
    assert main(["audit", str(npz), "--verification", "--pairs", str(tmp_path / "no.csv")]) == 2
    assert "pair file not found" in capsys.readouterr().err

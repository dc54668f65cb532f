"""Pair files naming samples by id (`id_a,id_b[,same]`) rather than by row index."""

from __future__ import annotations

import numpy as np
import pytest

from fairmetric.audit.verification.pairs import Pairs, read_pair_file
from fairmetric.embeddings import EmbeddingSet

# identity per row: 0 0 1 1 2 2; groups f f m m f f
IDS = ["Ann/Ann_1.jpg", "Ann/Ann_2.jpg", "Bo/Bo_1.jpg", "Bo/Bo_2.jpg", "007", "7"]


def small(ids=IDS) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    return EmbeddingSet(
        embeddings=rng.normal(size=(6, 4)).astype(np.float32),
        labels=[0, 0, 1, 1, 2, 2],
        attributes={"sex": ["f", "f", "m", "m", "f", "f"]},
        ids=ids,
    )


def write(tmp_path, text: str, name: str = "pairs.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read(path, data: EmbeddingSet) -> Pairs:
    codes = {"sex": np.asarray(data.attribute("sex"))}
    return read_pair_file(path, data.labels, codes, ids=data.ids)


def as_lists(pairs: Pairs) -> dict:
    """Every index array and count of ``pairs``, for an exact comparison."""

    def one(s):
        return (s.i.dtype, s.i.tolist(), s.j.tolist(), s.exhaustive, s.available)

    return {
        "genuine": one(pairs.genuine),
        "impostor": one(pairs.impostor),
        "same_group": {
            a: {g: one(s) for g, s in groups.items()} for a, groups in pairs.same_group.items()
        },
    }


ROWS = [(0, 1, 1), (3, 2, 1), (4, 5, 1), (0, 2, 0), (1, 4, 0), (5, 0, 0), (2, 4, 0)]


@pytest.mark.parametrize("same", [True, False])
def test_ids_give_the_same_pairs_as_row_indices(tmp_path, same):
    data = small()
    tail = ",same" if same else ""
    by_index = "a,b" + tail + "\n"
    by_id = "id_a,id_b" + tail + "\n"
    for a, b, s in ROWS:
        by_index += f"{a},{b}" + (f",{s}" if same else "") + "\n"
        by_id += f"{IDS[a]},{IDS[b]}" + (f",{s}" if same else "") + "\n"
    expected = read(write(tmp_path, by_index, "index.csv"), data)
    got = read(write(tmp_path, by_id, "ids.csv"), data)
    assert as_lists(got) == as_lists(expected)
    assert got.genuine.i.tolist() == [0, 3, 4] and got.impostor.j.tolist() == [2, 4, 0, 4]
    assert got.same_group["sex"][0].i.tolist() == [1, 5]  # both samples female


def test_ids_follow_their_rows_after_a_subset(tmp_path):
    """The file names samples, so it holds for a reordered subset where row indices would not."""
    data = small().subset([5, 4, 3, 2, 1, 0])
    pairs = read(write(tmp_path, "id_a,id_b\nAnn/Ann_1.jpg,Ann/Ann_2.jpg\n007,Bo/Bo_1.jpg\n"), data)
    assert pairs.genuine.i.tolist() == [5] and pairs.genuine.j.tolist() == [4]
    assert pairs.impostor.i.tolist() == [1] and pairs.impostor.j.tolist() == [3]


def test_numeric_looking_ids_stay_distinct_strings(tmp_path):
    data = small()
    pairs = read(write(tmp_path, "id_a,id_b,same\n007,7,1\n7,Ann/Ann_1.jpg,0\n"), data)
    assert pairs.genuine.i.tolist() == [4] and pairs.genuine.j.tolist() == [5]
    with pytest.raises(ValueError, match="unknown id '07'"):
        read(write(tmp_path, "id_a,id_b\n007,7\n07,7\n"), data)


def test_unknown_id_names_the_id_and_the_line(tmp_path):
    path = write(tmp_path, "id_a,id_b,same\n007,7,1\nAnn/Ann_1.jpg,Ann/Ann_3.jpg,1\n")
    with pytest.raises(ValueError) as err:
        read(path, small())
    message = str(err.value)
    assert message.startswith(f"pairs: {path} line 3: unknown id 'Ann/Ann_3.jpg'")
    assert "ids of the file are unknown" not in message  # only one
    assert "the set's ids look like 'Ann/Ann_1.jpg'" in message


def test_several_unknown_ids_are_counted(tmp_path):
    text = "id_a,id_b\n007,7\nx1,Ann/Ann_1.jpg\n" + "".join(
        f"Ann/Ann_1.jpg,y{k}\n" for k in range(7)
    )
    with pytest.raises(ValueError) as err:
        read(write(tmp_path, text), small())
    message = str(err.value)
    assert "line 3: unknown id 'x1'" in message
    assert "8 ids of the file are unknown: 'x1', 'y0', 'y1', 'y2', 'y3', ..." in message


def test_a_set_without_ids_says_how_to_get_them(tmp_path):
    data = small(ids=None)
    path = write(tmp_path, "id_a,id_b\n007,7\n")
    with pytest.raises(ValueError) as err:
        read_pair_file(path, data.labels, {}, ids=data.ids)
    message = str(err.value)
    assert message.startswith(f"pairs: {path} names samples by id")
    assert "EmbeddingSet(..., ids=[...])" in message and "embed an image folder" in message
    assert "'a,b[,same]'" in message


def test_an_id_paired_with_itself(tmp_path):
    with pytest.raises(ValueError, match="line 3: a pair of id '007' with itself"):
        read(write(tmp_path, "id_a,id_b\n007,7\n007,007\n"), small())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id_a,id_b,same\n007,7,1\n007,Bo/Bo_1.jpg,maybe\n", "line 3: same must be 1/0"),
        (
            "id_a,id_b,same\n007,7,0\n",
            "line 2: the file says ids '007' and '7' are different identities, the labels say "
            "the same",
        ),
        ("id_a,id_b,same\n007,Bo/Bo_1.jpg,1\n", "line 2: the file says ids '007' and 'Bo/Bo_1"),
        ("id_a,id_b\n007,7\nAnn/Ann_1.jpg,Ann/Ann_2.jpg\n", "2 genuine and 0 impostor pairs"),
        ("id_a,id_b\n007,Bo/Bo_1.jpg\n", "0 genuine and 1 impostor pairs"),
        ("id_a,id_b,same\n007,7\n", r"line 2: expected id_a,id_b,same, got \['007', '7'\]"),
        ("id_a,id_b\n007,\n", r"line 2: expected id_a,id_b, got \['007', ''\]"),
        ("id_a,id_a\n007,7\n", "column 'id_a' appears twice"),
        ("id_a,b\n007,7\n", r"line 1: expected a header 'a,b\[,same\]' \(row indices\) or "),
    ],
)
def test_the_checks_of_index_files_apply_to_id_files(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read(write(tmp_path, text), small())


def test_ids_are_matched_after_csv_quoting_and_stripping(tmp_path):
    data = small(ids=["a, b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg"])
    pairs = read(write(tmp_path, 'id_a,id_b\n"a, b.jpg", c.jpg\nc.jpg,e.jpg\n'), data)
    assert pairs.genuine.i.tolist() == [0] and pairs.genuine.j.tolist() == [1]


def test_the_audit_and_the_cli_take_an_id_pair_file(tmp_path):
    """An id pair file gives the audit of the equivalent index pair file, also after the rows
    are shuffled (ids follow the samples, indices do not)."""
    import json

    from fairmetric.audit.verification import verification_audit
    from fairmetric.cli import main

    data = small()
    by_index = write(tmp_path, "a,b,same\n0,1,1\n2,3,1\n0,2,0\n1,5,0\n4,0,0\n3,4,0\n", "i.csv")
    lines = ["id_a,id_b,same"]
    for line in by_index.read_text().splitlines()[1:]:
        a, b, same = line.split(",")
        lines.append(f"{IDS[int(a)]},{IDS[int(b)]},{same}")
    by_id = write(tmp_path, "\n".join(lines) + "\n", "ids.csv")
    want = verification_audit(data, fmr=[0.2], bootstrap=0, pairs_file=by_index)
    order = np.array([5, 3, 1, 0, 4, 2])
    shuffled = data.subset(order)
    got = verification_audit(shuffled, fmr=[0.2], bootstrap=0, pairs_file=by_id)
    for key in ("fmr@2e-1", "fnmr@2e-1", "threshold@2e-1"):
        assert got[key].overall.value == want[key].overall.value
        assert got[key].values("sex") == want[key].values("sex")
    shuffled.save(tmp_path / "emb.npz")
    argv = ["audit", str(tmp_path / "emb.npz"), "--verification", "--pairs", str(by_id)]
    argv += ["--fmr", "0.2", "--k", "1", "--bootstrap", "0", "--no-linear-probe", "--no-progress"]
    assert (
        main([*argv, "--homophily-k", "1", "--leakage-k", "1", "--out", str(tmp_path / "o")]) == 0
    )
    meta = json.loads((tmp_path / "o" / "report.json").read_text())["metadata"]["verification"]
    assert meta["pairs"]["genuine"] == 2 and meta["pairs"]["impostor"] == 4

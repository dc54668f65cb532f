"""Per-sample ids of an EmbeddingSet: validation, carried through subsets and files, looked up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from fairmetric.embeddings import FORMAT_VERSION, EmbeddingSet, find_ids

FORMATS = [".npz", ".safetensors"]
IDS = ["lfw/Ann_1.jpg", "lfw/Ann_2.jpg", "lfw/Bo_1.jpg", "007", "7", "Zoë/ñ 1.png"]


def make_set(ids=IDS, n: int = 6, **kwargs) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    return EmbeddingSet(
        embeddings=rng.normal(size=(n, 3)).astype(np.float32),
        labels=[0, 0, 1, 2, 3, 4][:n],
        attributes={"sex": ["f", "f", "m", "m", "f", "m"][:n]},
        ids=ids,
        **kwargs,
    )


# -- construction -----------------------------------------------------------------------------
def test_ids_are_kept_as_a_unicode_array():
    es = make_set()
    assert isinstance(es.ids, np.ndarray) and es.ids.dtype.kind == "U"
    assert es.ids.tolist() == IDS
    assert make_set(ids=np.array(IDS)).ids.tolist() == IDS
    assert make_set(ids=np.array(IDS, dtype=object)).ids.tolist() == IDS
    assert make_set(ids=tuple(IDS)).ids.tolist() == IDS
    assert make_set(ids=None).ids is None


def test_one_row_and_unicode_ids():
    es = make_set(ids=["Ærøskøbing/😀.jpg"], n=1)
    assert es.ids.tolist() == ["Ærøskøbing/😀.jpg"]
    assert es.rows_of(["Ærøskøbing/😀.jpg"]).tolist() == [0]


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        (IDS[:5], "embeddings has 6 rows but ids has 5 entries; give one id per row"),
        ([*IDS[:5], IDS[1]], r"ids must be unique, but 'lfw/Ann_2\.jpg' names rows 1 and 5"),
        ([*IDS[:5], 7], r"ids must be strings, but ids\[5\] is 7 \(int\)"),
        ([*IDS[:5], None], r"ids\[5\] is None \(NoneType\)"),
        ([*IDS[:5], b"x"], r"ids\[5\] is b'x' \(bytes\)"),
        (np.arange(6), "ids must be strings, got an array of dtype int64"),
        (np.array([b"a", b"b", b"c", b"d", b"e", b"f"]), r"got an array of dtype \|S1"),
        (["a", "", "b", "c", "d", "e"], r"ids\[1\] is an empty string"),
        (["a", "b\x00", "c", "d", "e", "f"], r"ids\[1\] = 'b\\x00' contains a NUL character"),
        (["a", "b\x00c", "c", "d", "e", "f"], r"ids\[1\] = 'b\\x00c' contains a NUL"),
        ("abcdef", "ids must be a sequence of 6 strings .* got a single string"),
        (np.array(IDS).reshape(2, 3), r"got shape \(2, 3\)"),
    ],
)
def test_bad_ids_are_refused(ids, match):
    with pytest.raises(ValueError, match=match):
        make_set(ids=ids)


def test_numbers_are_not_taken_for_names():
    """``"007"`` and ``"7"`` are two ids; the number 7 is refused rather than guessed at."""
    es = make_set()
    assert es.rows_of(["007", "7"]).tolist() == [3, 4]
    with pytest.raises(ValueError, match="ids must be strings"):
        make_set(ids=[*IDS[:3], 7, 8, 9])


# -- views ------------------------------------------------------------------------------------
def test_subset_carries_the_ids_of_its_rows():
    es = make_set()
    assert es.subset([4, 0, 5]).ids.tolist() == [IDS[4], IDS[0], IDS[5]]
    assert es.subset([-1]).ids.tolist() == [IDS[5]]
    mask = np.array([True, False, True, False, False, True])
    assert es.subset(mask).ids.tolist() == [IDS[0], IDS[2], IDS[5]]
    assert make_set(ids=None).subset([1, 2]).ids is None


def test_drop_invalid_carries_the_ids_of_the_kept_rows():
    x = np.ones((6, 3), dtype=np.float32)
    x[1, 0], x[4, 2] = np.nan, np.inf
    es = make_set(allow_invalid=True)
    es.embeddings = x  # two invalid rows, the rest as built
    clean, dropped = es.drop_invalid()
    assert dropped.tolist() == [1, 4]
    assert clean.ids.tolist() == [IDS[0], IDS[2], IDS[3], IDS[5]]
    assert clean.rows_of([IDS[5]]).tolist() == [3]


def test_rows_of_finds_rows_in_the_order_asked():
    es = make_set()
    rows = es.rows_of([IDS[5], IDS[0], IDS[5], "Zoë/ñ 1.png"])
    assert rows.dtype == np.int64 and rows.tolist() == [5, 0, 5, 5]
    assert es.rows_of(np.array([IDS[2]])).tolist() == [2]
    assert es.rows_of([]).tolist() == []
    # against a plain loop
    rng = np.random.default_rng(1)
    wanted = [IDS[k] for k in rng.integers(0, 6, size=50)]
    assert es.rows_of(wanted).tolist() == [IDS.index(w) for w in wanted]


def test_rows_of_names_up_to_five_unknown_ids_and_counts_them():
    es = make_set()
    wanted = [IDS[0], "x1", "x2", "x1", "x3", "x4", "x5", "x6", IDS[1]]
    with pytest.raises(ValueError) as err:
        es.rows_of(wanted)
    message = str(err.value)
    assert message.startswith("6 id(s) are not in this set of 6 rows: 'x1', 'x2', 'x3', 'x4', 'x5'")
    assert "'x6'" not in message and ", ..." in message
    with pytest.raises(ValueError, match=r"1 id\(s\) are not in this set of 6 rows: 'lfw/Ann_1'"):
        es.rows_of(["lfw/Ann_1"])  # a prefix of an id is not that id


def test_rows_of_refuses_non_strings_and_a_single_string():
    es = make_set()
    with pytest.raises(ValueError, match=r"ids to look up must be strings, got 3 \(int\)"):
        es.rows_of([3])
    with pytest.raises(ValueError, match="a sequence of ids, got the single string '007'"):
        es.rows_of("007")


def test_rows_of_a_set_without_ids_says_how_to_get_them():
    with pytest.raises(ValueError, match=r"has no ids: give them .*EmbeddingSet\(\.\.\., ids="):
        make_set(ids=None).rows_of(["a"])


def test_find_ids_marks_absent_values():
    ids = np.array(["b", "a", "ab"])
    # numpy would read "a\x00" as "a": a value with a NUL is never an id
    assert find_ids(ids, ["ab", "a", "zz", "", "a\x00", "ab\x00b"]).tolist() == [
        2,
        1,
        -1,
        -1,
        -1,
        -1,
    ]
    assert find_ids(ids, []).tolist() == []


# -- files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_with_and_without_ids(tmp_path, suffix):
    for ids in (IDS, None):
        es = make_set(ids=ids)
        back = EmbeddingSet.load(es.save(tmp_path / f"set{suffix}"))
        assert np.array_equal(back.embeddings, es.embeddings)
        assert np.array_equal(back.labels, es.labels)
        if ids is None:
            assert back.ids is None
        else:
            assert back.ids.dtype.kind == "U" and back.ids.tolist() == IDS


@pytest.mark.parametrize("suffix", FORMATS)
def test_one_row_unicode_round_trip(tmp_path, suffix):
    es = make_set(ids=["Ærøskøbing/😀.jpg"], n=1)
    assert EmbeddingSet.load(es.save(tmp_path / f"one{suffix}")).ids.tolist() == [
        "Ærøskøbing/😀.jpg"
    ]


def test_files_with_ids_keep_the_layout_older_readers_know(tmp_path):
    """Ids are an extra npz array or an extra header key, the format version unchanged: a reader
    from before ids reads the rest of the file and ignores them."""
    path = make_set().save(tmp_path / "set.npz")
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(
            [
                "embeddings",
                "labels",
                "attributes",
                "label_names",
                "attribute_names",
                "header",
                "ids",
            ]
        )
        assert data["ids"].dtype.kind == "U"
        assert json.loads(str(data["header"]))["format_version"] == FORMAT_VERSION == 1
    path = make_set().save(tmp_path / "set.safetensors")
    with safe_open(str(path), framework="np") as f:
        assert sorted(f.keys()) == ["attributes", "embeddings", "labels"]
        assert json.loads(f.metadata()["ids"]) == IDS
        assert json.loads(f.metadata()["format_version"]) == 1


def _write_old_file(path, x, labels, attributes):
    """An embedding file as written before sets had ids (format version 1, no ids)."""
    header = {
        "kind": "fairmetric.EmbeddingSet",
        "format_version": 1,
        "attribute_value_names": {"sex": ["f", "m"]},
        "metadata": {"source": "old"},
    }
    arrays = {"embeddings": x, "labels": labels, "attributes": attributes}
    if path.suffix == ".npz":
        np.savez(
            path,
            **arrays,
            label_names=np.array(["p", "q"]),
            attribute_names=np.array(["sex"]),
            header=np.array(json.dumps(header)),
        )
    else:
        header.update(label_names=["p", "q"], attribute_names=["sex"])
        save_file(arrays, str(path), metadata={k: json.dumps(v) for k, v in header.items()})


@pytest.mark.parametrize("suffix", FORMATS)
def test_old_files_without_ids_still_load(tmp_path, suffix):
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 0, 1, 1], dtype=np.int64)
    attributes = np.array([[0], [1], [0], [1]], dtype=np.int64)
    path = tmp_path / f"old{suffix}"
    _write_old_file(path, x, labels, attributes)
    es = EmbeddingSet.load(path)
    assert es.ids is None
    assert np.array_equal(es.embeddings, x) and es.label_names == ["p", "q"]
    assert es.metadata == {"source": "old"}


def test_bad_ids_in_a_file_are_refused_naming_it(tmp_path):
    path = make_set().save(tmp_path / "set.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["ids"] = np.array([*IDS[:5], IDS[0]])
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"set\.npz: ids must be unique"):
        EmbeddingSet.load(path)
    arrays["ids"] = np.arange(6)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="'ids' must be a 1-D unicode array"):
        EmbeddingSet.load(path)


def test_bad_ids_in_a_safetensors_header_are_refused(tmp_path):
    path = make_set().save(tmp_path / "set.safetensors")
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for ids, match in ((IDS[:5], "ids has 5 entries"), ({"a": 1}, "'ids' must be a list")):
        meta["ids"] = json.dumps(ids)
        save_file(tensors, str(path), metadata=meta)
        with pytest.raises(ValueError, match=match):
            EmbeddingSet.load(path)


def test_ids_too_large_for_a_safetensors_header_suggest_npz(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def too_large(*args, **kwargs):
        raise SafetensorError("Error while serializing: header too large")

    monkeypatch.setattr("safetensors.numpy.save", too_large)
    with pytest.raises(
        ValueError, match=r"cannot save 6 ids in the header .* save the set as \.npz"
    ):
        make_set().save(tmp_path / "set.safetensors")
    with pytest.raises(SafetensorError):  # without ids, the error is not about ids
        make_set(ids=None).save(tmp_path / "set.safetensors")

"""Tests for fairmetric.embeddings.EmbeddingSet: construction, validation, views and files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save_file

from fairmetric.embeddings import FORMAT_VERSION, EmbeddingSet

FORMATS = [".npz", ".safetensors"]


def make_set(n: int = 6, d: int = 3, **kwargs) -> EmbeddingSet:
    rng = np.random.default_rng(0)
    args = dict(
        embeddings=rng.normal(size=(n, d)).astype(np.float32),
        labels=["cat", "dog", "cat", "eel", "dog", "cat"][:n],
        attributes={
            "sex": ["f", "m", "m", "f", "f", "m"][:n],
            "age": [0, 2, 1, 1, 0, 2][:n],
            "skin": [True, False, True, True, False, False][:n],
        },
        metadata={"source": "unit-test", "model": "test_resnet", "split": "val", "dims": [1, 2]},
    )
    args.update(kwargs)
    return EmbeddingSet(**args)


def assert_same(a: EmbeddingSet, b: EmbeddingSet) -> None:
    """Bit-exact equality of every field (``-0.0`` and ``0.0`` are told apart)."""
    assert a.embeddings.dtype == b.embeddings.dtype == np.float32
    assert np.array_equal(a.embeddings.view(np.uint32), b.embeddings.view(np.uint32))
    assert a.labels.dtype == b.labels.dtype == np.int64
    assert a.attributes.dtype == b.attributes.dtype == np.int64
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.attributes, b.attributes)
    assert a.attributes.shape == b.attributes.shape
    assert a.attribute_names == b.attribute_names
    assert a.label_names == b.label_names
    assert a.attribute_value_names == b.attribute_value_names
    assert a.metadata == b.metadata


# -- construction -----------------------------------------------------------------------------
def test_string_columns_are_encoded_and_names_kept():
    es = make_set()
    assert es.embeddings.dtype == np.float32
    assert es.label_names == ["cat", "dog", "eel"]
    assert es.labels.tolist() == [0, 1, 0, 2, 1, 0]
    assert es.attribute_names == ["sex", "age", "skin"]
    assert es.attribute("sex").tolist() == [0, 1, 1, 0, 0, 1]
    assert es.attribute_value_names == {
        "sex": ["f", "m"],
        "age": ["0", "1", "2"],
        "skin": ["False", "True"],
    }
    assert len(es) == 6 and es.dim == 3 and es.num_classes == 3
    assert "n=6" in repr(es)


def test_attributes_as_array_with_names_and_float64_cast():
    emb = np.arange(8, dtype=np.float64).reshape(4, 2) / 3
    es = EmbeddingSet(
        embeddings=emb,
        labels=[0, 1, 1, 0],
        attributes=np.array([[0, 1], [1, 0], [1, 1], [0, 0]]),
        attribute_names=["a", "b"],
        attribute_value_names={"a": ["young", "old"]},
    )
    assert es.embeddings.dtype == np.float32
    assert np.array_equal(es.embeddings, emb.astype(np.float32))
    assert es.attribute_value_names == {"a": ["young", "old"], "b": ["0", "1"]}
    assert es.label_names == ["0", "1"]
    assert es.attributes.shape == (4, 2) and es.metadata == {}


def test_no_attributes_and_integer_embeddings():
    es = EmbeddingSet(embeddings=[[1, 2], [3, 4]], labels=[0, 0])
    assert es.attributes.shape == (2, 0) and es.attribute_names == []
    assert es.embeddings.dtype == np.float32


def test_torch_tensor_requiring_grad_is_accepted():
    t = torch.ones(3, 4, requires_grad=True)
    es = EmbeddingSet(embeddings=t, labels=[0, 1, 2])
    assert es.embeddings.shape == (3, 4) and es.embeddings.dtype == np.float32


def test_metadata_is_normalised_through_json():
    es = make_set(metadata={"shape": (1, 2), "nested": {"k": [1.5, None, True]}})
    assert es.metadata == {"shape": [1, 2], "nested": {"k": [1.5, None, True]}}


@pytest.mark.parametrize(
    ("embeddings", "match"),
    [
        (np.zeros(5), r"2-D \(N, D\), got shape \(5,\)"),
        (np.zeros((2, 3, 4)), r"2-D \(N, D\), got shape \(2, 3, 4\)"),
        (np.zeros((0, 3)), r"no rows \(N == 0\)"),
        (np.zeros((3, 0)), "dimension D must be at least 1"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "must be numeric.*dtype <U1"),
        (np.array([[1, None]] * 3, dtype=object), "must be numeric.*dtype object"),
        (np.ones((3, 2), dtype=bool), "must be numeric.*dtype bool"),
        ([[1.0, 2.0], [3.0]], "rectangular numeric"),
    ],
)
def test_bad_embeddings_are_refused(embeddings, match):
    with pytest.raises(ValueError, match=match):
        EmbeddingSet(embeddings=embeddings, labels=[0, 1, 2])


def test_label_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="embeddings has 4 rows but labels has 3 entries"):
        EmbeddingSet(embeddings=np.zeros((4, 2)), labels=[0, 1, 2])


def test_attribute_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="embeddings has 3 rows but attributes has 2 values"):
        EmbeddingSet(
            embeddings=np.zeros((3, 2)),
            labels=[0, 1, 2],
            attributes=np.zeros((2, 1), dtype=int),
            attribute_names=["a"],
        )
    with pytest.raises(ValueError, match="embeddings has 3 rows but attribute 'sex' has 4 values"):
        EmbeddingSet(
            embeddings=np.zeros((3, 2)), labels=[0, 1, 2], attributes={"sex": [0, 1, 0, 1]}
        )


def test_attribute_array_without_names_is_refused():
    with pytest.raises(ValueError, match="attribute_names is required"):
        EmbeddingSet(embeddings=np.zeros((2, 2)), labels=[0, 1], attributes=np.zeros((2, 1)))


def test_names_must_cover_codes():
    with pytest.raises(ValueError, match="label_names has 2 .* go up to 2"):
        EmbeddingSet(embeddings=np.zeros((3, 2)), labels=[0, 1, 2], label_names=["a", "b"])
    with pytest.raises(ValueError, match="label_names has 0 entries but labels go up to 1"):
        EmbeddingSet(embeddings=np.zeros((2, 2)), labels=[0, 1], label_names=[])
    with pytest.raises(ValueError, match=r"attribute_value_names\['g'\] has 1 names"):
        EmbeddingSet(
            embeddings=np.zeros((2, 2)),
            labels=[0, 1],
            attributes={"g": [0, 1]},
            attribute_value_names={"g": ["x"]},
        )
    with pytest.raises(ValueError, match=r"unknown attributes \['h'\]"):
        EmbeddingSet(
            embeddings=np.zeros((2, 2)),
            labels=[0, 1],
            attributes={"g": [0, 1]},
            attribute_value_names={"h": ["x", "y"]},
        )


def test_nul_characters_in_names_are_refused():
    with pytest.raises(ValueError, match="label_names must not contain NUL"):
        EmbeddingSet(embeddings=np.zeros((2, 2)), labels=[0, 1], label_names=["a\x00", "b"])
    with pytest.raises(ValueError, match="attribute_names must not contain NUL"):
        EmbeddingSet(embeddings=np.zeros((2, 2)), labels=[0, 1], attributes={"g\x00": [0, 1]})


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"f": object()}, "JSON-serialisable"),
        ({"x": float("nan")}, "JSON-serialisable"),
        (["not", "a", "dict"], "metadata must be a dict"),
    ],
)
def test_bad_metadata_is_refused(metadata, match):
    with pytest.raises(ValueError, match=match):
        make_set(metadata=metadata)


def test_invalid_rows_are_counted_and_located():
    emb = np.zeros((10, 2))
    emb[[1, 3, 4, 6, 7, 9], 0] = [np.nan, np.inf, -np.inf, np.nan, np.nan, np.nan]
    with pytest.raises(ValueError) as err:
        EmbeddingSet(embeddings=emb, labels=np.zeros(10, dtype=int))
    message = str(err.value)
    assert "6 row(s) with NaN or Inf" in message
    assert "[1, 3, 4, 6, 7, ...]" in message
    assert "allow_invalid=True" in message and "EmbeddingSet.drop_invalid()" in message


def test_float64_too_large_for_float32_counts_as_invalid():
    with pytest.raises(ValueError, match=r"1 row\(s\) with NaN or Inf.*\[1\]"):
        EmbeddingSet(embeddings=np.array([[1.0], [1e300]]), labels=[0, 1])


def test_allow_invalid_then_drop_invalid():
    emb = np.arange(10, dtype=np.float32).reshape(5, 2)
    emb[1, 1] = np.nan
    emb[3, 0] = np.inf
    es = make_set(n=5, d=2, embeddings=emb, allow_invalid=True)
    assert es.invalid_mask.tolist() == [False, True, False, True, False]
    clean, dropped = es.drop_invalid()
    assert dropped.tolist() == [1, 3] and dropped.dtype == np.int64
    assert np.array_equal(clean.embeddings, emb[[0, 2, 4]])
    assert clean.labels.tolist() == es.labels[[0, 2, 4]].tolist()
    assert np.array_equal(clean.attributes, es.attributes[[0, 2, 4]])
    assert clean.label_names == es.label_names and clean.metadata == es.metadata
    again, none = clean.drop_invalid()
    assert none.size == 0 and len(again) == 3


def test_drop_invalid_refuses_to_drop_everything():
    es = EmbeddingSet(embeddings=np.full((2, 2), np.nan), labels=[0, 1], allow_invalid=True)
    with pytest.raises(ValueError, match="all 2 rows have NaN or Inf"):
        es.drop_invalid()


# -- views ------------------------------------------------------------------------------------
def test_attribute_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown attribute 'race'; this set has: sex, age, skin"):
        make_set().attribute("race")
    bare = EmbeddingSet(embeddings=np.zeros((1, 1)), labels=[0])
    with pytest.raises(ValueError, match=r"\(no attributes\)"):
        bare.attribute("sex")


def test_subset_by_positions_and_mask():
    es = make_set()
    sub = es.subset([4, 0, -1])
    assert np.array_equal(sub.embeddings, es.embeddings[[4, 0, 5]])
    assert sub.labels.tolist() == es.labels[[4, 0, 5]].tolist()
    assert np.array_equal(sub.attributes, es.attributes[[4, 0, 5]])
    assert sub.label_names == es.label_names
    assert sub.attribute_value_names == es.attribute_value_names
    sub.metadata["split"] = "changed"
    assert es.metadata["split"] == "val"  # the subset owns its metadata
    masked = es.subset(es.labels == 0)
    assert masked.labels.tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("indices", "error", "match"),
    [
        ([], ValueError, "selects no rows"),
        (np.zeros(6, dtype=bool), ValueError, "selects no rows"),
        (np.ones(4, dtype=bool), ValueError, r"must have shape \(6,\)"),
        ([0.5, 1.0], ValueError, "integer positions"),
        ([[0, 1]], ValueError, "integer positions"),
        ([6], IndexError, "out of range for a set of 6 rows"),
        ([-7], IndexError, "out of range"),
    ],
)
def test_subset_errors(indices, error, match):
    with pytest.raises(error, match=match):
        make_set().subset(indices)


# -- files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_is_exact(tmp_path, suffix):
    es = make_set()
    path = es.save(tmp_path / f"set{suffix}")
    assert path == tmp_path / f"set{suffix}"
    loaded = EmbeddingSet.load(path)
    assert_same(es, loaded)
    assert loaded.label_names == ["cat", "dog", "eel"]
    assert loaded.attribute_value_names["skin"] == ["False", "True"]
    assert sorted(os.listdir(tmp_path)) == [f"set{suffix}"]  # no temporary file left behind


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_without_attributes_and_with_unicode_names(tmp_path, suffix):
    es = EmbeddingSet(
        embeddings=np.array([[-0.0, 1e-40], [3.5, -2.0]], dtype=np.float32),
        labels=["größe", "λ 🐟"],
        metadata={"note": "ünïcode", "n": 2},
    )
    assert_same(es, EmbeddingSet.load(es.save(tmp_path / "sub" / "dir" / f"x{suffix}")))


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_of_invalid_rows_needs_allow_invalid(tmp_path, suffix):
    emb = np.ones((3, 2), dtype=np.float32)
    emb[2, 0] = np.nan
    es = EmbeddingSet(embeddings=emb, labels=[0, 1, 2], allow_invalid=True)
    path = es.save(tmp_path / f"bad{suffix}")
    with pytest.raises(ValueError, match=rf"bad{suffix}: embeddings has 1 row\(s\)"):
        EmbeddingSet.load(path)
    loaded = EmbeddingSet.load(path, allow_invalid=True)
    assert np.array_equal(loaded.embeddings, emb, equal_nan=True)


def test_npz_layout_is_plain_numpy(tmp_path):
    path = make_set().save(tmp_path / "set.npz")
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(
            ["embeddings", "labels", "attributes", "label_names", "attribute_names", "header"]
        )
        assert data["label_names"].tolist() == ["cat", "dog", "eel"]
        header = json.loads(str(data["header"]))
    assert header["format_version"] == FORMAT_VERSION
    assert header["metadata"]["model"] == "test_resnet"


@pytest.mark.parametrize("suffix", FORMATS)
def test_save_overwrites_atomically(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"set{suffix}"
    first = make_set()
    first.save(path)
    make_set(metadata={"second": True}).save(path)
    assert EmbeddingSet.load(path).metadata == {"second": True}

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    target = "numpy.savez" if suffix == ".npz" else "safetensors.numpy.save"
    monkeypatch.setattr(target, fail)
    with pytest.raises(RuntimeError, match="disk full"):
        first.save(path)
    assert EmbeddingSet.load(path).metadata == {"second": True}  # old file intact
    assert os.listdir(tmp_path) == [f"set{suffix}"]  # temporary file removed


@pytest.mark.parametrize("name", ["set.pt", "set.npy", "set", "set.json"])
def test_unsupported_suffix_lists_supported_ones(tmp_path, name):
    with pytest.raises(ValueError, match=r"unsupported .*use one of \.npz, \.safetensors"):
        make_set().save(tmp_path / name)
    with pytest.raises(ValueError, match=r"use one of \.npz, \.safetensors"):
        EmbeddingSet.load(tmp_path / name)


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_file_names_the_path(tmp_path, suffix):
    path = tmp_path / f"nowhere{suffix}"
    with pytest.raises(FileNotFoundError, match=f"embedding file not found: .*nowhere{suffix}"):
        EmbeddingSet.load(path)
    (tmp_path / f"dir{suffix}").mkdir()
    with pytest.raises(FileNotFoundError):
        EmbeddingSet.load(tmp_path / f"dir{suffix}")


def test_npz_without_embedding_keys_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(
        ValueError, match=r"not an embedding file: expected the keys .*'embeddings'"
    ):
        EmbeddingSet.load(path)


def test_npz_missing_one_array_is_refused(tmp_path):
    path = make_set().save(tmp_path / "set.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "embeddings"}
    np.savez(path, **arrays)
    with pytest.raises(
        ValueError, match=r"not a complete embedding file: it lacks \['embeddings'\]"
    ):
        EmbeddingSet.load(path)


def test_npy_renamed_npz_is_refused(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="single .npy array, not an .npz archive"):
        EmbeddingSet.load(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_text_file_renamed_is_refused(tmp_path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("id,label\n1,cat\n")
    with pytest.raises(
        ValueError, match=f"not a readable embedding file.*expected a {suffix} file"
    ):
        EmbeddingSet.load(path)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path, suffix, keep):
    path = make_set(n=6, d=64).save(tmp_path / f"set{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="not a readable embedding file|not an embedding file"):
        EmbeddingSet.load(path)


def test_corrupted_npz_bytes_are_refused(tmp_path):
    path = make_set(n=6, d=64).save(tmp_path / "set.npz")
    data = bytearray(path.read_bytes())
    data[100:140] = b"\xff" * 40  # inside the first member's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="embedding file"):
        EmbeddingSet.load(path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lacks the 'fairmetric.EmbeddingSet' marker"):
        EmbeddingSet.load(path)


def test_safetensors_missing_tensor_is_refused(tmp_path):
    path = tmp_path / "set.safetensors"
    make_set().save(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "labels"}
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"it lacks \['labels'\]"):
        EmbeddingSet.load(path)


def _rewrite_header(path: Path, **changes) -> None:
    """Rewrite the header of a saved file with some fields changed."""
    if path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays["header"]))
        header.update(changes)
        arrays["header"] = np.array(json.dumps(header))
        np.savez(path, **arrays)
    else:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta.update({k: json.dumps(v) for k, v in changes.items()})
        save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("suffix", FORMATS)
def test_newer_format_version_asks_for_an_upgrade(tmp_path, suffix):
    path = make_set().save(tmp_path / f"set{suffix}")
    _rewrite_header(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(
        ValueError, match=f"format version {FORMAT_VERSION + 1}.*upgrade fairmetric"
    ):
        EmbeddingSet.load(path)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format_version": "1"}, "invalid format_version '1'"),
        ({"kind": "something.else"}, "lacks the 'fairmetric.EmbeddingSet' marker"),
        ({"metadata": [1, 2]}, "header field 'metadata' must be a dict"),
        ({"attribute_value_names": "sex"}, "header field 'attribute_value_names' must be a dict"),
    ],
)
def test_bad_header_fields_are_refused(tmp_path, suffix, changes, match):
    path = make_set().save(tmp_path / f"set{suffix}")
    _rewrite_header(path, **changes)
    with pytest.raises(ValueError, match=match):
        EmbeddingSet.load(path)


def test_tampered_arrays_are_validated_on_load(tmp_path):
    path = make_set().save(tmp_path / "set.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["labels"] = arrays["labels"][:4]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"set\.npz: embeddings has 6 rows but labels has 4"):
        EmbeddingSet.load(path)


# -- property test ----------------------------------------------------------------------------
names = st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=6)


@st.composite
def embedding_sets(draw) -> EmbeddingSet:
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 6))
    embeddings = draw(
        hnp.arrays(
            np.float32, (n, d), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)
        )
    )
    if draw(st.booleans()):
        labels = draw(st.lists(names, min_size=n, max_size=n))
    else:
        labels = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    attribute_names = draw(st.lists(names, max_size=3, unique=True))
    attributes = {
        a: draw(st.lists(st.sampled_from(["x", "y", "z"]) | st.just("w"), min_size=n, max_size=n))
        for a in attribute_names
    }
    metadata = draw(
        st.dictionaries(names, st.integers() | st.text(max_size=5) | st.booleans(), max_size=3)
    )
    return EmbeddingSet(
        embeddings=embeddings, labels=labels, attributes=attributes, metadata=metadata
    )


@settings(max_examples=40, deadline=None)
@given(es=embedding_sets(), suffix=st.sampled_from(FORMATS))
def test_round_trip_property(es, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(es, EmbeddingSet.load(es.save(Path(tmp) / f"es{suffix}")))


def test_repeated_attribute_value_names_are_refused():
    """Found by tests/test_properties.py: two codes named "x" were one group in reports."""
    with pytest.raises(ValueError, match=r"attribute_value_names\['g'\] names two values 'x'"):
        EmbeddingSet(
            embeddings=np.eye(4),
            labels=[0, 0, 1, 1],
            attributes={"g": [0, 1, 0, 1]},
            attribute_value_names={"g": ["x", "x"]},
        )

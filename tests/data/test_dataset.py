"""Tests for fairmetric.data.dataset: column encoding, the attribute dataset and its subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fairmetric.data.dataset import (
    AttributeDataset,
    ImageFileDataset,
    TensorAttributeDataset,
    encode_column,
)


class IndexDataset(AttributeDataset):
    """The smallest concrete dataset: the input of sample ``i`` is ``("x", i)``."""

    def load_input(self, index: int):
        return ("x", index)


def reference_encode(values) -> tuple[list[int], list[str]]:
    """Slow reference for non-integer columns: sorted distinct strings, codes by lookup."""
    names = sorted({str(v) for v in values})
    return [names.index(str(v)) for v in values], names


def make_dataset(**kwargs) -> IndexDataset:
    args = dict(
        labels=["cat", "dog", "cat", "eel", "dog", "cat"],
        attributes={"sex": ["f", "m", "m", "f", "f", "m"], "age": [0, 2, 1, 1, 0, 2]},
        name="pets",
    )
    args.update(kwargs)
    return IndexDataset(**args)


# -- encode_column ----------------------------------------------------------------------------
def test_encode_integers_are_kept_and_named_0_to_max():
    codes, names = encode_column(np.array([3, 0, 3, 1], dtype=np.int32), name="c")
    assert codes.dtype == np.int64 and codes.tolist() == [3, 0, 3, 1]
    assert names == ["0", "1", "2", "3"]  # unused code 2 still gets a name


def test_encode_unsigned_integers():
    codes, names = encode_column(np.array([2, 1], dtype=np.uint8), name="c")
    assert codes.dtype == np.int64 and codes.tolist() == [2, 1] and names == ["0", "1", "2"]


@pytest.mark.parametrize(
    "values",
    [
        ["zebra", "ant", "moth", "ant", "zebra"],
        ["b", "B", "a", "10", "9"],  # string order, not numeric order, for strings
        [True, False, False, True],
        [0.5, 0.25, 0.5, 0.75],
        [1.5, -2.0, 1.5],
    ],
)
def test_encode_other_values_map_to_sorted_codes_with_names(values):
    codes, names = encode_column(values, name="c")
    expected_codes, expected_names = reference_encode(np.asarray(values).tolist())
    if isinstance(values[0], bool):
        expected_codes, expected_names = reference_encode(values)
    assert codes.dtype == np.int64
    assert codes.tolist() == expected_codes
    assert names == expected_names
    assert [names[c] for c in codes] == [str(v) for v in np.asarray(values).tolist()]


def test_encode_integer_valued_floats_are_codes():
    codes, names = encode_column(np.array([2.0, 0.0, 2.0]), name="c")
    assert codes.dtype == np.int64 and codes.tolist() == [2, 0, 2] and names == ["0", "1", "2"]


def test_encode_floats_follow_numeric_order():
    codes, names = encode_column(np.array([2.5, 10.5, 2.5]), name="c")
    assert codes.tolist() == [0, 1, 0]
    assert names == ["2.5", "10.5"]


def test_encode_empty_column():
    codes, names = encode_column([], name="c")
    assert codes.dtype == np.int64 and codes.shape == (0,) and names == []


def test_encode_rejects_two_dimensional_column():
    with pytest.raises(ValueError, match="'c' must be one-dimensional.*shape \\(2, 2\\)"):
        encode_column(np.zeros((2, 2), dtype=np.int64), name="c")


def test_encode_rejects_negative_integers():
    with pytest.raises(ValueError, match="'c' has negative integer codes.*min -1.*strings"):
        encode_column(np.array([0, -1, 2]), name="c")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_rejects_non_finite_floats(bad):
    with pytest.raises(ValueError, match="'c' contains NaN or infinite"):
        encode_column(np.array([0.0, bad]), name="c")


# -- AttributeDataset: construction -----------------------------------------------------------
def test_dict_attributes_give_array_views_and_names():
    ds = make_dataset()
    assert len(ds) == 6 and ds.name == "pets" and ds.num_classes == 3
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 0, 2, 1, 0]
    assert ds.label_names == ["cat", "dog", "eel"]
    assert ds.attribute_names == ["sex", "age"]
    assert ds.attributes.dtype == np.int64 and ds.attributes.shape == (6, 2)
    assert ds.attributes[:, 0].tolist() == [0, 1, 1, 0, 0, 1]
    assert ds.attributes[:, 1].tolist() == [0, 2, 1, 1, 0, 2]
    assert ds.attribute_value_names == {"sex": ["f", "m"], "age": ["0", "1", "2"]}


def test_array_attributes_with_names():
    attrs = np.array([[1, 0], [0, 2], [1, 1]])
    ds = IndexDataset(labels=[0, 2, 2], attributes=attrs, attribute_names=("a", "b"))
    assert ds.attribute_names == ["a", "b"]
    assert np.array_equal(ds.attributes, attrs)
    assert ds.label_names == ["0", "1", "2"] and ds.num_classes == 2  # label 1 is absent
    assert ds.attribute_value_names == {"a": ["0", "1"], "b": ["0", "1", "2"]}


def test_string_array_attributes_are_encoded_per_column():
    attrs = np.array([["x", "lo"], ["y", "hi"], ["x", "hi"]])
    ds = IndexDataset(labels=[0, 1, 1], attributes=attrs, attribute_names=["a", "b"])
    assert ds.attributes.tolist() == [[0, 1], [1, 0], [0, 0]]
    assert ds.attribute_value_names == {"a": ["x", "y"], "b": ["hi", "lo"]}


def test_one_dimensional_attribute_array_is_one_column():
    ds = IndexDataset(labels=[0, 1, 0], attributes=np.array([1, 0, 1]), attribute_names=["a"])
    assert ds.attributes.shape == (3, 1) and ds.attribute("a").tolist() == [1, 0, 1]


def test_no_attributes():
    ds = IndexDataset(labels=[1, 0])
    assert ds.attributes.shape == (2, 0) and ds.attributes.dtype == np.int64
    assert ds.attribute_names == [] and ds.attribute_value_names == {}
    assert ds[0][2].shape == (0,)


def test_empty_dataset():
    ds = IndexDataset(labels=[], attributes={"a": []})
    assert len(ds) == 0 and ds.attributes.shape == (0, 1) and ds.num_classes == 0


def test_explicit_names_are_kept():
    ds = IndexDataset(
        labels=[0, 1, 1],
        label_names=["zero", "one"],
        attributes={"a": [0, 1, 0]},
        attribute_value_names={"a": ("no", "yes")},
    )
    assert ds.label_names == ["zero", "one"]
    assert ds.attribute_value_names == {"a": ["no", "yes"]}
    assert ds.value_name("a", 1) == "yes"


def test_dict_attributes_with_matching_attribute_names():
    ds = IndexDataset(
        labels=[0, 1], attributes={"a": [0, 1], "b": [1, 1]}, attribute_names=["a", "b"]
    )
    assert ds.attribute_names == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(label_names=["cat", "dog"]), "label_names has 2 entries but labels go up to 2"),
        (
            dict(attribute_names=["age", "sex"]),  # same keys, other order
            "attribute_names disagrees with the keys",
        ),
        (
            dict(attributes=np.zeros((6, 1, 1), dtype=np.int64), attribute_names=["a"]),
            "attributes must be \\(N, A\\), got shape \\(6, 1, 1\\)",
        ),
        (
            dict(attributes=np.zeros((6, 2), dtype=np.int64)),
            "attribute_names is required when attributes is an array",
        ),
        (
            dict(attributes=np.zeros((6, 2), dtype=np.int64), attribute_names=["a"]),
            "attribute_names has 1 names but attributes has 2 columns",
        ),
        (
            dict(attributes=np.zeros((6, 2), dtype=np.int64), attribute_names=["a", "a"]),
            "attribute names must be unique",
        ),
        (
            dict(attributes={"sex": ["f", "m"]}),
            "attribute 'sex' has 2 values but there are 6 labels",
        ),
        (
            dict(attributes={"age": [0, 1, -1, 0, 0, 0]}),
            "column 'age' has negative integer codes",
        ),
        (
            dict(attributes={"age": np.zeros((6, 2), dtype=np.int64)}),
            "column 'age' must be one-dimensional",
        ),
        (dict(labels=[0, -3, 1, 1, 1, 1]), "column 'labels' has negative integer codes"),
        (dict(labels=[0.0, np.nan, 1, 1, 1, 1]), "column 'labels' contains NaN"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_dataset(**kwargs)


# -- AttributeDataset: metadata accessors -----------------------------------------------------
def test_attribute_index_and_attribute_column():
    ds = make_dataset()
    assert ds.attribute_index("sex") == 0 and ds.attribute_index("age") == 1
    assert ds.attribute("age").tolist() == [0, 2, 1, 1, 0, 2]
    assert ds.attribute("sex").tolist() == ds.attributes[:, 0].tolist()


def test_unknown_attribute_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown attribute 'skin'; this dataset has: sex, age"):
        make_dataset().attribute("skin")
    with pytest.raises(ValueError, match="unknown attribute 'skin'.*\\(no attributes\\)"):
        IndexDataset(labels=[0, 1]).attribute_index("skin")


def test_value_name_falls_back_to_the_code():
    ds = make_dataset()
    assert ds.value_name("sex", 0) == "f" and ds.value_name("sex", 1) == "m"
    assert ds.value_name("age", 2) == "2"
    assert ds.value_name("sex", 5) == "5" and ds.value_name("sex", -1) == "-1"


def test_value_name_unknown_attribute_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown attribute 'skin'"):
        make_dataset().value_name("skin", 0)


def test_describe_counts_each_present_value():
    ds = make_dataset(
        attributes={"sex": ["f", "m", "m", "f", "f", "m"], "age": [0, 2, 2, 2, 0, 2]},
        attribute_value_names={"age": ["young", "mid", "old"]},
    )
    assert ds.describe() == "pets: 6 samples, 3 classes\n  sex: f=3, m=3\n  age: young=2, old=4"


def test_describe_without_attributes():
    assert IndexDataset(labels=[0, 0, 1], name="d").describe() == "d: 3 samples, 2 classes"


# -- AttributeDataset: items ------------------------------------------------------------------
def test_getitem_returns_input_int_label_and_long_attributes():
    ds = make_dataset()
    for i in range(len(ds)):
        x, label, attrs = ds[i]
        assert x == ("x", i)
        assert type(label) is int and label == ds.labels[i]
        assert attrs.dtype == torch.int64 and attrs.tolist() == ds.attributes[i].tolist()
    assert ds[np.int64(2)][0] == ("x", 2)


def test_getitem_negative_index_and_out_of_range():
    ds = make_dataset()
    assert ds[-1][1] == ds.labels[-1]
    assert ds[-6][2].tolist() == ds.attributes[0].tolist()
    for bad in (6, -7, 100):
        with pytest.raises(IndexError, match=f"index {bad} out of range for a dataset of 6"):
            ds[bad]


def test_getitem_attributes_are_a_copy():
    ds = make_dataset()
    ds[0][2][0] = 99
    assert ds.attributes[0, 0] == 0


def test_base_class_has_no_inputs():
    with pytest.raises(NotImplementedError):
        AttributeDataset(labels=[0, 1])[0]


# -- subsets ----------------------------------------------------------------------------------
def test_subset_selects_samples_and_keeps_names():
    ds = make_dataset()
    sub = ds.subset([4, 0, 3])
    assert isinstance(sub, AttributeDataset) and len(sub) == 3
    assert sub.labels.tolist() == [1, 0, 2]
    assert sub.attributes.tolist() == ds.attributes[[4, 0, 3]].tolist()
    assert sub.label_names == ds.label_names and sub.attribute_names == ds.attribute_names
    assert sub.attribute_value_names == ds.attribute_value_names and sub.name == "pets"
    assert [sub[i][0] for i in range(3)] == [("x", 4), ("x", 0), ("x", 3)]
    assert sub[-1][0] == ("x", 3)
    assert sub.attribute("age").tolist() == [0, 0, 1]
    assert sub.value_name("sex", 1) == "m"


def test_subset_negative_indices_and_range():
    ds = make_dataset()
    sub = ds.subset(np.array([-1, -6]))
    assert sub.indices.tolist() == [5, 0] and [sub[0][0], sub[1][0]] == [("x", 5), ("x", 0)]
    for bad in ([6], [-7], [0, 10]):
        with pytest.raises(IndexError, match="subset indices out of range for a dataset of 6"):
            ds.subset(bad)
    with pytest.raises(IndexError):
        sub[2]


def test_empty_subset():
    sub = make_dataset().subset([])
    assert len(sub) == 0 and sub.attributes.shape == (0, 2)


def test_subset_of_subset_composes():
    ds = make_dataset()
    inner = ds.subset([5, 4, 3, 2])
    outer = inner.subset([3, 0, -1])
    assert outer.parent is ds  # no chain of views
    assert outer.indices.tolist() == [2, 5, 2]
    assert [outer[i][0] for i in range(3)] == [("x", 2), ("x", 5), ("x", 2)]
    assert outer.labels.tolist() == ds.labels[[2, 5, 2]].tolist()
    assert outer.attributes.tolist() == ds.attributes[[2, 5, 2]].tolist()
    assert outer.label_names == ds.label_names


def test_subset_indexes_per_sample_extras_of_the_parent():
    ds = make_dataset()
    ds.partition = np.array(["train", "train", "valid", "test", "train", "test"])
    ds.paths = [f"img{i}.png" for i in range(6)]
    ds.boxes = np.arange(24).reshape(6, 4)
    ds.image_size = 8
    ds.centres = np.zeros(3)  # an array, but not one entry per sample
    ds.names_short = ["a", "b"]  # a list, but not one entry per sample
    sub = ds.subset([3, 1]).subset([1, 0])  # samples 1 and 3 of the parent
    assert sub.partition.tolist() == ["train", "test"]
    assert sub.paths == ["img1.png", "img3.png"]
    assert sub.boxes.tolist() == [[4, 5, 6, 7], [12, 13, 14, 15]]
    assert sub.image_size == 8
    assert sub.centres is ds.centres and sub.names_short is ds.names_short
    with pytest.raises(AttributeError):
        _ = sub.no_such_thing


def test_subset_sees_extras_set_on_the_parent_later():
    ds = make_dataset()
    sub = ds.subset([0, 5])
    ds.weights = np.linspace(0.0, 1.0, 6)
    assert sub.weights.tolist() == [0.0, 1.0]


def test_subset_describe():
    sub = make_dataset().subset([0, 1])
    assert sub.describe() == "pets: 2 samples, 2 classes\n  sex: f=1, m=1\n  age: 0=1, 2=1"


# -- TensorAttributeDataset -------------------------------------------------------------------
def test_tensor_dataset_items_and_shape():
    inputs = torch.arange(4 * 3 * 2 * 2, dtype=torch.float64).reshape(4, 3, 2, 2)
    ds = TensorAttributeDataset(inputs, labels=[0, 1, 1, 0], attributes={"g": ["a", "b", "a", "a"]})
    assert ds.input_shape == (3, 2, 2)
    assert ds.inputs.dtype == torch.float32  # float inputs become float32
    x, label, attrs = ds[2]
    assert torch.equal(x, inputs[2].float()) and label == 1 and attrs.tolist() == [0]


def test_tensor_dataset_accepts_numpy_and_keeps_integer_inputs():
    ds = TensorAttributeDataset(np.arange(6, dtype=np.uint8).reshape(3, 2), labels=[0, 1, 2])
    assert ds.inputs.dtype == torch.uint8 and ds.input_shape == (2,)
    assert ds[1][0].tolist() == [2, 3]
    ds = TensorAttributeDataset(np.zeros((3, 5), dtype=np.float64), labels=[0, 1, 2])
    assert ds.inputs.dtype == torch.float32


def test_tensor_dataset_length_mismatch():
    with pytest.raises(ValueError, match="inputs has 2 rows but there are 3 labels"):
        TensorAttributeDataset(torch.zeros(2, 4), labels=[0, 1, 2])


def test_tensor_dataset_subset_reads_parent_rows():
    inputs = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    ds = TensorAttributeDataset(inputs, labels=[0, 1, 2, 3, 4])
    sub = ds.subset([4, 1]).subset([1])
    assert sub.input_shape == (2,)
    x, label, _ = sub[0]
    assert torch.equal(x, inputs[1]) and label == 1


# -- ImageFileDataset -------------------------------------------------------------------------
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def colour_tensor(colour, size: int) -> torch.Tensor:
    return (torch.tensor(colour, dtype=torch.float32) / 255).view(3, 1, 1).expand(3, size, size)


def write_images(folder: Path) -> list[Path]:
    """A solid red 6×6 PNG and an 8×4 PNG whose left 4 columns are blue, the right 4 green."""
    red = folder / "red.png"
    Image.new("RGB", (6, 6), RED).save(red)
    split = folder / "sub" / "split.png"
    split.parent.mkdir()
    img = Image.new("RGB", (8, 4), BLUE)
    img.paste(GREEN, (4, 0, 8, 4))
    img.save(split)
    return [red, split]


def test_image_files_load_lazily_as_tensors(tmp_path):
    paths = write_images(tmp_path)
    ds = ImageFileDataset(
        [str(p) for p in paths], image_size=4, labels=["r", "s"], attributes={"a": [1, 0]}
    )
    assert ds.input_shape == (3, 4, 4) and ds.paths == paths and ds.bboxes is None
    x, label, attrs = ds[0]
    assert x.dtype == torch.float32 and torch.allclose(x, colour_tensor(RED, 4))
    assert label == 0 and attrs.tolist() == [1]
    x = ds[1][0]
    assert x.shape == (3, 4, 4)
    assert torch.allclose(x[:, :, 0], colour_tensor(BLUE, 4)[:, :, 0])
    assert torch.allclose(x[:, :, -1], colour_tensor(GREEN, 4)[:, :, 0])


def test_image_bboxes_crop_before_resizing(tmp_path):
    paths = write_images(tmp_path)
    boxes = np.array([[0, 0, 6, 6], [4, 0, 4, 4]])  # (x, y, width, height): keep the green half
    ds = ImageFileDataset(paths, image_size=3, bboxes=boxes, labels=[0, 1])
    assert ds.bboxes.dtype == np.float64
    assert torch.allclose(ds[0][0], colour_tensor(RED, 3))
    assert torch.allclose(ds[1][0], colour_tensor(GREEN, 3))
    boxes = np.array([[0, 0, 6, 6], [0.0, 0.0, 4.0, 4.0]])  # the blue half
    assert torch.allclose(
        ImageFileDataset(paths, image_size=3, bboxes=boxes, labels=[0, 1])[1][0],
        colour_tensor(BLUE, 3),
    )


def test_image_custom_transform(tmp_path):
    paths = write_images(tmp_path)
    ds = ImageFileDataset(paths, transform=lambda img: torch.tensor(img.size), labels=[0, 1])
    assert ds[0][0].tolist() == [6, 6] and ds[1][0].tolist() == [8, 4]


def test_image_subset_indexes_paths_and_boxes(tmp_path):
    paths = write_images(tmp_path)
    boxes = np.array([[0, 0, 6, 6], [4, 0, 4, 4]])
    ds = ImageFileDataset(paths, image_size=2, bboxes=boxes, labels=[0, 1])
    sub = ds.subset([1])
    assert sub.paths == [paths[1]] and sub.bboxes.tolist() == [[4, 0, 4, 4]]
    assert sub.input_shape == (3, 2, 2) and sub.image_size == 2
    assert torch.allclose(sub[0][0], colour_tensor(GREEN, 2))


def test_image_missing_file_names_the_path(tmp_path):
    paths = write_images(tmp_path)
    gone = tmp_path / "gone.png"
    ds = ImageFileDataset([paths[0], gone], labels=[0, 1])
    assert ds[0][0].shape == (3, 64, 64)  # the default size
    with pytest.raises(FileNotFoundError, match="image file missing: .*gone.png"):
        ds[1]


def test_image_paths_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="got 1 image paths but 2 labels"):
        ImageFileDataset([tmp_path / "a.png"], labels=[0, 1])

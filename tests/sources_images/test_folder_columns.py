"""A folder of images plus a CSV whose columns are chosen by name (``load_folder_csv``)."""

from __future__ import annotations

import pytest

from fairmetric.data.folder import load_folder_csv
from fairmetric.errors import UserError
from fairmetric.sources import Columns, load_source

NAMED = {"path_column": "file", "label_column": "person", "attribute_columns": ["sex", "skin"]}


def test_columns_by_name(folder):
    ds = load_folder_csv(folder, csv_file="people.csv", image_size=8, **NAMED)
    assert len(ds) == 12 and ds.attribute_names == ["sex", "skin"]  # the order asked for
    assert [ds.label_names[c] for c in ds.labels[:4]] == ["p00", "p00", "p01", "p01"]
    assert [ds.value_name("skin", c) for c in ds.attribute("skin")[:4]] == [
        "light",
        "light",
        "dark",
        "dark",
    ]
    assert ds.sample_ids[:2] == ["img/0.png", "img/1.png"]
    assert ds[0][0].shape == (3, 8, 8)


def test_default_attributes_are_every_other_column(folder):
    ds = load_folder_csv(folder, csv_file="people.csv", path_column="file", label_column="person")
    assert ds.attribute_names == ["skin", "sex", "note"]


def test_columns_in_any_order(tmp_path, folder):
    lines = (folder / "people.csv").read_text().splitlines()
    swapped = [",".join([r.split(",")[1], r.split(",")[2], r.split(",")[0]]) for r in lines]
    (folder / "swapped.csv").write_text("\n".join(swapped) + "\n")
    ds = load_folder_csv(folder, csv_file="swapped.csv", path_column="file", label_column="person")
    assert ds.attribute_names == ["skin"] and ds.sample_ids[0] == "img/0.png"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path_column": "path"}, r"no column 'path' \(path_column\).*--path-column"),
        ({"label_column": "identity"}, r"no column 'identity' \(label_column\)"),
        ({"attribute_columns": ["skin", "age"]}, r"no column 'age' \(attribute_columns\)"),
        ({"attribute_columns": ["person"]}, "column 'person' is named twice"),
        ({"attribute_columns": "skin"}, "attribute_columns must be a list"),
        ({"label_column": ""}, "label_column must be a non-empty column name"),
    ],
)
def test_bad_column_names(folder, kwargs, message):
    args = {**NAMED, **kwargs}
    with pytest.raises(ValueError, match=message) as err:
        load_folder_csv(folder, csv_file="people.csv", **args)
    if "no column" in message:
        assert "file,person,skin,sex,note" in str(err.value)  # what the header has


def test_paths_must_stay_inside_the_folder(folder, tmp_path):
    text = (folder / "people.csv").read_text().replace("img/3.png", "../outside.png")
    (folder / "people.csv").write_text(text)
    (tmp_path / "outside.png").write_bytes((folder / "img" / "0.png").read_bytes())
    with pytest.raises(ValueError, match=r"line 5: image path '\.\./outside\.png' resolves to"):
        load_folder_csv(folder, csv_file="people.csv", **NAMED)


def test_skip_unreadable(folder):
    (folder / "img" / "5.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        ds = load_folder_csv(folder, csv_file="people.csv", skip_unreadable=True, **NAMED)
    assert len(ds) == 11 and "img/5.png" not in ds.sample_ids


def test_image_source_flag_errors(folder, timm_weights):
    weights = {"weights": timm_weights, "device": "cpu"}
    with pytest.raises(UserError, match="--table.*describe an image folder: add --images"):
        load_source("test_resnet", images_csv="people.csv", config="colored_digits", **weights)
    with pytest.raises(UserError, match="needs images: --images FOLDER.*--config"):
        load_source("test_resnet", **weights)
    with pytest.raises(UserError, match="either as --images FOLDER or through --config"):
        load_source("test_resnet", images=folder, config="colored_digits", **weights)
    with pytest.raises(UserError, match="--id-column apply to table sources"):
        load_source("test_resnet", images=folder, columns=Columns(id="file"), **weights)
    with pytest.raises(UserError, match="apply to a timm model name or open_clip:ARCH"):
        load_source("emb.npz", images=folder)
    with pytest.raises(UserError, match=r"--weights, .* apply to a timm model name.*'my:embed'"):
        load_source("my:embed", weights=timm_weights)
    with pytest.raises(FileNotFoundError, match=r"expected .*faces/labels\.csv"):
        load_source("test_resnet", images=folder, **weights)

"""Tests for fairmetric.data.registry.build_splits: every dataset's splits, imbalance and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fairmetric.data.colored_digits import make_colored_digits
from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.data.registry import DATASETS, build_splits
from fairmetric.data.splits import class_disjoint_split
from tests.data.test_loaders import make_celeba, make_cub, make_lfw

DIGITS = {"max_shift": 2}  # with image_size=12
GAUSS = {"n_classes": 12, "samples_per_class": 5, "dim": 4, "nuisance_dim": 2}


def label_names(ds) -> set[str]:
    return {ds.label_names[c] for c in np.unique(ds.labels)}


def assert_class_disjoint(splits, full_classes: set[str] | None = None) -> None:
    train, test = splits["train"], splits["test"]
    assert len(train) > 0 and len(test) > 0
    assert label_names(train).isdisjoint(label_names(test))
    if full_classes is not None:
        assert label_names(train) | label_names(test) == full_classes


def test_registry_names():
    assert list(DATASETS) == [
        "identities",
        "colored_digits",
        "gaussian",
        "celeba",
        "lfw",
        "cub",
        "folder",
    ]


# -- built-in benchmarks ----------------------------------------------------------------------
@pytest.mark.parametrize("split", ["auto", "official"])
def test_colored_digits_splits(split):
    splits = build_splits("colored_digits", image_size=12, split=split, seed=3, params=DIGITS)
    assert set(splits) == {"train", "test"}
    assert_class_disjoint(splits, {str(d) for d in range(10)})
    assert label_names(splits["train"]) == {"0", "1", "2", "3", "4"}
    assert splits["train"].input_shape == (3, 12, 12)
    # the seed reaches the generator, and the benchmark's defaults fill what params leave out
    from fairmetric.data.registry import COLORED_DIGITS_DEFAULTS

    reference = make_colored_digits(
        split="train", image_size=12, seed=3, **{**COLORED_DIGITS_DEFAULTS, **DIGITS}
    )
    assert torch.equal(splits["train"].inputs, reference.inputs)


def test_colored_digits_params_reach_the_builder():
    params = {**DIGITS, "train_classes": [5, 6, 7], "n_groups": 3}
    splits = build_splits("colored_digits", image_size=12, params=params)
    assert label_names(splits["train"]) == {"5", "6", "7"}
    assert set(splits["test"].attribute("colour").tolist()) == {0, 1, 2}


@pytest.mark.parametrize("split", ["auto", "class_disjoint"])
def test_gaussian_splits_are_class_disjoint(split):
    splits = build_splits("gaussian", split=split, test_fraction=0.25, seed=5, params=GAUSS)
    assert set(splits) == {"train", "test"}
    assert_class_disjoint(splits, {str(c) for c in range(12)})
    assert len(np.unique(splits["test"].labels)) == 3
    assert splits["train"].input_shape == (6,)
    # the same as generating and splitting by hand with that seed
    full = make_gaussian_groups(seed=5, **GAUSS)
    train, test = class_disjoint_split(full, test_fraction=0.25, seed=5)
    assert np.array_equal(splits["test"].labels, test.labels)
    x = torch.stack([splits["train"][i][0] for i in range(len(train))])
    assert torch.equal(x, torch.stack([train[i][0] for i in range(len(train))]))


# -- imbalance ---------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [0.02, 0.3])
def test_imbalance_reaches_the_target_share(target):
    imbalance = {"attribute": "colour", "share": target, "minority_value": 1}
    plain = build_splits("colored_digits", image_size=12, params=DIGITS)
    splits = build_splits("colored_digits", image_size=12, params=DIGITS, imbalance=imbalance)
    train = splits["train"]
    share = float(np.mean(train.attribute("colour") == 1))
    assert abs(share - target) <= 1 / len(train)
    assert len(train) < len(plain["train"])
    assert torch.equal(splits["test"].inputs, plain["test"].inputs)  # the test split is untouched


def test_imbalance_by_class_keeps_classes_complete():
    params = {**GAUSS, "n_classes": 30, "group_probs": (0.5, 0.5)}
    plain = build_splits("gaussian", params=params)
    imbalance = {"attribute": "group", "share": 0.2, "by": "class", "minority_value": 1}
    splits = build_splits("gaussian", params=params, imbalance=imbalance)
    train = splits["train"]
    assert 0 < np.mean(train.attribute("group") == 1) <= 0.2
    for c in np.unique(train.labels):
        assert (train.labels == c).sum() == (plain["train"].labels == c).sum() == 5


def test_empty_imbalance_is_no_imbalance():
    plain = build_splits("gaussian", params=GAUSS)
    splits = build_splits("gaussian", params=GAUSS, imbalance={})
    assert np.array_equal(plain["train"].labels, splits["train"].labels)


@pytest.mark.parametrize("imbalance", [{"share": 0.1}, {"attribute": "group"}])
def test_imbalance_needs_attribute_and_share(imbalance):
    with pytest.raises(ValueError, match="data.imbalance needs 'attribute' and 'share'"):
        build_splits("gaussian", params=GAUSS, imbalance=imbalance)


def test_imbalance_bad_values_are_value_errors():
    with pytest.raises(ValueError, match="share must lie in"):
        build_splits("gaussian", params=GAUSS, imbalance={"attribute": "group", "share": 2})
    with pytest.raises(ValueError, match="unknown attribute 'colour'; this dataset has: group"):
        build_splits("gaussian", params=GAUSS, imbalance={"attribute": "colour", "share": 0.1})


@pytest.mark.parametrize("extra", [{"sahre": 0.1}, {"seed": 1}])
def test_imbalance_unknown_key_is_a_value_error(extra):
    with pytest.raises(ValueError, match="data.imbalance"):
        build_splits(
            "gaussian", params=GAUSS, imbalance={"attribute": "group", "share": 0.1, **extra}
        )


# -- errors ------------------------------------------------------------------------------------
def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(
        ValueError,
        match="unknown dataset 'mnist'; available: identities, colored_digits, gaussian, celeba, lfw, cub, folder",
    ):
        build_splits("mnist")


@pytest.mark.parametrize(
    "name, split, message",
    [
        ("colored_digits", "class_disjoint", "colored_digits has its own class-disjoint split"),
        ("colored_digits", "random", "use data.split=auto"),
        ("gaussian", "official", "gaussian_groups has no official class-disjoint split"),
        ("gaussian", "random", "use data.split=auto or class_disjoint"),
    ],
)
def test_split_not_allowed(name, split, message):
    params = DIGITS if name == "colored_digits" else GAUSS
    with pytest.raises(ValueError, match=message):
        build_splits(name, image_size=12, split=split, params=params)


@pytest.mark.parametrize("name", ["celeba", "lfw", "cub", "folder"])
@pytest.mark.parametrize("root", [None, ""])
def test_on_disk_datasets_need_a_root(name, root):
    with pytest.raises(
        ValueError, match=f"dataset '{name}' is read from a local copy: set data.root"
    ):
        build_splits(name, root=root)


@pytest.mark.parametrize(
    "name, params",
    [
        ("colored_digits", {"colour": 3}),
        ("colored_digits", {"split": "test"}),  # the registry sets it
        ("gaussian", {"n_class": 4}),
    ],
)
def test_bad_params_are_value_errors(name, params):
    with pytest.raises(ValueError, match=f"bad data.params for dataset '{name}'"):
        build_splits(name, image_size=12, params=params)


def test_bad_param_values_reach_the_builder_check():
    with pytest.raises(ValueError, match="n_classes, samples_per_class and dim must all be >= 1"):
        build_splits("gaussian", params={"n_classes": 0})


def test_test_fraction_is_validated():
    with pytest.raises(ValueError, match="test_fraction must lie in \\(0, 1\\)"):
        build_splits("gaussian", params=GAUSS, test_fraction=1.0)


# -- on-disk datasets (tiny fixture folders) ---------------------------------------------------
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def make_folder(root: Path, csv_name: str = "labels.csv") -> Path:
    """Six people with two solid-colour PNGs each; skin is constant per person."""
    rows = ["path,label,skin"]
    for person, colour in enumerate(COLOURS):
        for k in range(2):
            rel = f"imgs/p{person}_{k}.png"
            (root / "imgs").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (5, 5), colour).save(root / rel)
            rows.append(f"{rel},person{person},{'dark' if person % 3 == 0 else 'light'}")
    (root / csv_name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def colour_of(path: Path) -> tuple[int, int, int]:
    return COLOURS[int(path.name[1])]


@pytest.mark.parametrize("split", ["auto", "class_disjoint"])
def test_folder_splits_class_disjointly(tmp_path, split):
    root = make_folder(tmp_path)
    splits = build_splits("folder", root=str(root), image_size=4, split=split, seed=1)
    assert_class_disjoint(splits, {f"person{p}" for p in range(6)})
    assert len(np.unique(splits["test"].labels)) == 3
    assert len(splits["train"]) + len(splits["test"]) == 12
    for part in splits.values():
        assert part.attribute_value_names == {"skin": ["dark", "light"]}
        for i, path in enumerate(part.paths):  # each item is the image at its path
            x, label, _ = part[i]
            expected = torch.tensor(colour_of(path), dtype=torch.float32).view(3, 1, 1) / 255
            assert x.shape == (3, 4, 4) and torch.allclose(x, expected.expand(3, 4, 4))
            assert part.label_names[label] == f"person{path.name[1]}"


def test_folder_test_fraction_params_and_imbalance(tmp_path):
    root = make_folder(tmp_path, csv_name="meta.csv")
    splits = build_splits(
        "folder",
        root=root,
        image_size=4,
        test_fraction=1 / 3,
        params={"csv_file": "meta.csv"},
        imbalance={"attribute": "skin", "share": 0.25, "by": "class", "minority_value": 0},
    )
    assert_class_disjoint(splits)
    assert len(np.unique(splits["test"].labels)) == 2
    train = splits["train"]
    assert 0 < np.mean(train.attribute("skin") == 0) <= 0.25


def test_folder_errors(tmp_path):
    root = make_folder(tmp_path)
    with pytest.raises(ValueError, match="folder has no official class-disjoint split"):
        build_splits("folder", root=root, split="official")
    with pytest.raises(ValueError, match="bad data.params for dataset 'folder'"):
        build_splits("folder", root=root, params={"csv": "labels.csv"})
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        build_splits("folder", root=str(tmp_path / "nowhere"))


def test_celeba_official_partitions(tmp_path):
    root = make_celeba(tmp_path)
    splits = build_splits("celeba", root=str(root), image_size=4)
    assert set(splits) == {"train", "valid", "test"}
    # partitions 0, 0, 1, 2, 0 of the fixture: train / valid / test
    assert [p.name for p in splits["train"].paths] == ["000001.jpg", "000002.jpg", "000005.jpg"]
    assert [p.name for p in splits["valid"].paths] == ["000003.jpg"]
    assert [p.name for p in splits["test"].paths] == ["000004.jpg"]
    assert splits["train"].partition.tolist() == ["train"] * 3
    assert splits["train"][0][0].shape == (3, 4, 4)


def test_celeba_class_disjoint_and_bad_split(tmp_path):
    root = make_celeba(tmp_path)
    splits = build_splits("celeba", root=root, split="class_disjoint", image_size=4)
    assert set(splits) == {"train", "test"}
    assert_class_disjoint(splits, {"3", "7", "10"})
    with pytest.raises(ValueError, match="unknown split 'random' for celeba"):
        build_splits("celeba", root=root, split="random")


def test_cub_auto_split_is_first_half_of_the_classes(tmp_path):
    root = make_cub(tmp_path)
    splits = build_splits("cub", root=root, image_size=4)
    names = splits["train"].label_names
    assert label_names(splits["train"]) == {names[0]}
    assert label_names(splits["test"]) == {names[1], names[2]}
    assert_class_disjoint(build_splits("cub", root=root, split="class_disjoint", image_size=4))


@pytest.mark.parametrize(
    "split, message",
    [("official", "CUB's official train/test split shares classes"), ("random", "unknown split")],
)
def test_cub_bad_split(tmp_path, split, message):
    with pytest.raises(ValueError, match=message):
        build_splits("cub", root=make_cub(tmp_path), split=split)


def test_lfw_splits_class_disjointly(tmp_path):
    root = make_lfw(tmp_path)
    with pytest.warns(UserWarning, match="dropped"):
        splits = build_splits("lfw", root=root, image_size=4)
    assert_class_disjoint(splits, {"Alice_Smith", "Bob_Jones", "Carol_White"})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no official"):
        build_splits("lfw", root=root, split="official")

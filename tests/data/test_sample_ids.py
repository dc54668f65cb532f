"""Image datasets name their samples by path relative to the dataset folder (``sample_ids``), and
those names become the ids of the embeddings, so pair files naming images can be matched."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch.nn as nn
from PIL import Image

from fairmetric.data.celeba import load_celeba
from fairmetric.data.cub import load_cub
from fairmetric.data.dataset import ImageFileDataset
from fairmetric.data.folder import load_folder_csv
from fairmetric.data.lfw import load_lfw
from fairmetric.models.embed import dataset_embeddings, embed_dataset
from tests.data.test_loaders import make_celeba, make_cub, make_lfw, write

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (9, 9, 9)]


def make_folder(root: Path, paths: list[str]) -> Path:
    """One 8x8 PNG per path (a path listed twice is one file) and labels.csv listing them."""
    for k, rel in enumerate(paths):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), COLOURS[k % len(COLOURS)]).save(root / rel)
    lines = ["path,label,sex"] + [f"{p},p{k % 2},{'fm'[k % 2]}" for k, p in enumerate(paths)]
    write(root / "labels.csv", "\n".join(lines) + "\n")
    return root


PATHS = ["Ann/Ann_0001.png", "Bo/Bo_0001.png", "Ann/Ann_0002.png", "007.png", "7.png"]


def csv_paths(root: Path) -> list[str]:
    with (root / "labels.csv").open(newline="") as f:
        return [row["path"] for row in csv.DictReader(f)]


def test_folder_sample_ids_are_the_csv_paths(tmp_path):
    root = make_folder(tmp_path / "data", PATHS)
    ds = load_folder_csv(root, image_size=4)
    assert ds.sample_ids == csv_paths(root) == PATHS
    assert ds.subset([4, 0]).sample_ids == ["7.png", "Ann/Ann_0001.png"]
    assert ds.subset([4, 0]).subset([1]).sample_ids == ["Ann/Ann_0001.png"]


def test_sample_ids_do_not_depend_on_where_the_folder_lies(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data", PATHS)
    monkeypatch.chdir(tmp_path)
    assert load_folder_csv("data").sample_ids == load_folder_csv(root.resolve()).sample_ids


def test_image_dataset_ids_with_and_without_root(tmp_path):
    root = tmp_path / "r"
    paths = [root / "a" / "x.png", tmp_path / "outside.png"]
    labelled = dict(labels=[0, 1])
    assert ImageFileDataset(paths, root=root, **labelled).sample_ids == [
        "a/x.png",
        "../outside.png",
    ]
    assert ImageFileDataset(paths, **labelled).sample_ids == [str(p) for p in paths]


def test_dataset_embeddings_carry_the_ids(tmp_path):
    root = make_folder(tmp_path / "data", PATHS)
    ds = load_folder_csv(root, image_size=4)
    es = embed_dataset(nn.Flatten(), ds, device="cpu")
    assert es.ids.tolist() == PATHS
    assert es.rows_of(["7.png", "007.png"]).tolist() == [4, 3]
    part = dataset_embeddings(ds.subset([3, 1]), es.embeddings[[3, 1]])
    assert part.ids.tolist() == ["007.png", "Bo/Bo_0001.png"]
    back = type(es).load(es.save(tmp_path / "emb.npz"))
    assert back.ids.tolist() == PATHS


def test_repeated_paths_give_embeddings_without_ids(tmp_path):
    """A CSV may list one image twice (two crops, two labels); no ids then, and no error."""
    root = make_folder(tmp_path / "data", [*PATHS, "Ann/Ann_0001.png"])
    ds = load_folder_csv(root, image_size=4)
    assert ds.sample_ids[0] == ds.sample_ids[-1]
    es = dataset_embeddings(ds, np.zeros((len(ds), 2), dtype=np.float32))
    assert es.ids is None and len(es) == 6


def test_celeba_ids_are_the_file_names_of_its_lists(tmp_path):
    ds = load_celeba(make_celeba(tmp_path / "celeba"))
    assert ds.sample_ids == [f"{i:06d}.jpg" for i in range(1, 6)]


def test_cub_ids_are_the_paths_of_images_txt(tmp_path):
    root = make_cub(tmp_path)
    listed = (root / "CUB_200_2011" / "images.txt").read_text().split()[1::2]
    assert load_cub(root).sample_ids == listed


@pytest.mark.parametrize("people_folder", ["lfw", "lfw-deepfunneled"])
def test_lfw_ids_are_relative_to_the_folder_of_people(tmp_path, people_folder):
    with pytest.warns(UserWarning, match="dropped 1"):
        ds = load_lfw(make_lfw(tmp_path, people_folder))
    assert ds.sample_ids == [
        "Alice_Smith/Alice_Smith_0001.jpg",
        "Alice_Smith/Alice_Smith_0002.jpg",
        "Bob_Jones/Bob_Jones_0001.jpg",
        "Carol_White/Carol_White_0001.jpg",
    ]

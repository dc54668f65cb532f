"""Loaders of the official on-disk layouts, checked on tiny fixture folders built in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fairmetric.data.celeba import CELEBA_ATTRIBUTES, load_celeba
from fairmetric.data.cub import load_cub
from fairmetric.data.folder import load_folder_csv
from fairmetric.data.lfw import load_lfw

RED, GREEN, BLUE, WHITE, GREY, YELLOW = (
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128), (255, 255, 0),
)  # fmt: skip


def save_image(path: Path, colour: tuple[int, int, int], size: int = 8) -> None:
    """A solid-colour image (JPEG without chroma subsampling, so the colour survives)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, quality=95, subsampling=0)


def assert_colour(image: torch.Tensor, colour: tuple[int, int, int], size: int) -> None:
    assert image.shape == (3, size, size)
    expected = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
    assert torch.allclose(image, expected.expand_as(image), atol=4 / 255)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- CelebA -----------------------------------------------------------------------------------
CELEBA_IDS = [10, 10, 7, 3, 7]
CELEBA_PARTS = [0, 0, 1, 2, 0]
CELEBA_COLOURS = [RED, GREEN, BLUE, WHITE, GREY]
CELEBA_YES = {"Male": [0, 2], "Young": [1, 2, 3], "Pale_Skin": [4], "Smiling": [0, 1, 2, 3, 4]}


def make_celeba(folder: Path) -> Path:
    """Five images of identities 10, 10, 7, 3, 7 in the authors' layout."""
    rows = []
    for i, colour in enumerate(CELEBA_COLOURS):
        save_image(folder / "img_align_celeba" / f"{i + 1:06d}.jpg", colour)
        values = [" 1" if i in CELEBA_YES.get(a, []) else "-1" for a in CELEBA_ATTRIBUTES]
        rows.append(
            f"{i + 1:06d}.jpg " + " ".join(values)
        )  # "-1  1" has two spaces, as in the file
    write(
        folder / "list_attr_celeba.txt",
        f"{len(rows)}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "\n".join(rows) + "\n",
    )
    write(
        folder / "identity_CelebA.txt",
        "".join(f"{i + 1:06d}.jpg {id_}\n" for i, id_ in enumerate(CELEBA_IDS)),
    )
    write(
        folder / "list_eval_partition.txt",
        "".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(CELEBA_PARTS)),
    )
    return folder


def test_celeba_reads_labels_attributes_partition_and_images(tmp_path):
    ds = load_celeba(make_celeba(tmp_path), image_size=4)
    assert ds.name == "celeba" and len(ds) == 5
    assert ds.label_names == ["3", "7", "10"]
    assert ds.labels.tolist() == [2, 2, 1, 0, 1]
    assert ds.attribute_names == ["Male", "Young", "Pale_Skin"]
    assert ds.attribute("Male").tolist() == [1, 0, 1, 0, 0]
    assert ds.attribute("Young").tolist() == [0, 1, 1, 1, 0]
    assert ds.attribute("Pale_Skin").tolist() == [0, 0, 0, 0, 1]
    assert ds.attribute_value_names == {a: ["no", "yes"] for a in ds.attribute_names}
    assert ds.partition.dtype == np.dtype("<U5")
    assert ds.partition.tolist() == ["train", "train", "valid", "test", "train"]
    for i, colour in enumerate(CELEBA_COLOURS):
        x, label, attrs = ds[i]
        assert_colour(x, colour, 4)
        assert label == ds.labels[i] and attrs.tolist() == ds.attributes[i].tolist()


def test_celeba_accepts_torchvision_parent_and_chosen_attributes(tmp_path):
    make_celeba(tmp_path / "celeba")
    ds = load_celeba(tmp_path, attributes=("Smiling",))
    assert ds.attribute_names == ["Smiling"] and ds.attribute("Smiling").tolist() == [1] * 5
    assert_colour(ds[3][0], WHITE, 64)


def test_celeba_unknown_attribute_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="'Blond'.*5_o_Clock_Shadow.*Young"):
        load_celeba(make_celeba(tmp_path), attributes=("Male", "Blond"))


@pytest.mark.parametrize(
    "missing",
    ["img_align_celeba", "identity_CelebA.txt", "list_attr_celeba.txt", "list_eval_partition.txt"],
)
def test_celeba_missing_file_names_path_and_layout(tmp_path, missing):
    root = make_celeba(tmp_path)
    shutil.rmtree(root / missing) if (root / missing).is_dir() else (root / missing).unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_celeba(root)
    assert str(root / missing) in str(err.value)
    assert "img_align_celeba/, identity_CelebA.txt, list_attr_celeba.txt" in str(err.value)


def test_celeba_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*layout"):
        load_celeba(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("list_attr_celeba.txt", lambda s: s.replace("000002.jpg -1", "000002.jpg"), "line 4"),
        ("list_attr_celeba.txt", lambda s: s.replace("000003.jpg -1", "000003.jpg 0"), "line 5"),
        ("list_attr_celeba.txt", lambda s: "five\n" + s.split("\n", 1)[1], "line 1"),
        ("list_attr_celeba.txt", lambda s: s.replace("Male", "Female"), "line 2"),
        ("identity_CelebA.txt", lambda s: s.replace("000002.jpg 10", "000002.jpg 10 x"), "line 2"),
        ("identity_CelebA.txt", lambda s: s.replace("000004.jpg 3", "000004.jpg x"), "line 4"),
        ("identity_CelebA.txt", lambda s: s.replace("000005.jpg 7\n", ""), "no line for 000005"),
        ("list_eval_partition.txt", lambda s: s.replace("000003.jpg 1", "000003.jpg 3"), "line 3"),
    ],
)
def test_celeba_malformed_line_names_file_and_line(tmp_path, file, edit, message):
    root = make_celeba(tmp_path)
    (root / file).write_text(edit((root / file).read_text()))
    with pytest.raises(ValueError, match=message) as err:
        load_celeba(root)
    assert file in str(err.value)


# -- LFW --------------------------------------------------------------------------------------
LFW_HEADER = ["Male", "Asian", "Middle Aged"]
LFW_ROWS = {  # (person, image number): scores; Carol_White_0002 has no row
    ("Alice Smith", 1): [-1.5, 0.3, 0.0],
    ("Alice Smith", 2): [-0.2, 0.1, 1.2],
    ("Bob Jones", 1): [1.56, -1.88, 0.5],
    ("Carol White", 1): [-2.0, -0.1, -1.0],
    ("Nobody Here", 1): [1.0, 1.0, 1.0],  # a row without an image is fine
}
LFW_IMAGES = {
    "Alice_Smith": [RED, GREEN],
    "Bob_Jones": [BLUE],
    "Carol_White": [WHITE, GREY],
}


def make_lfw(root: Path, people_folder: str = "lfw", table: Path | None = None) -> Path:
    people = root / people_folder if people_folder else root
    for person, colours in LFW_IMAGES.items():
        for n, colour in enumerate(colours, start=1):
            save_image(people / person / f"{person}_{n:04d}.jpg", colour)
    lines = ["# 2 comments, then the header", "\t".join(["#", "person", "imagenum", *LFW_HEADER])]
    lines += ["\t".join([p, str(n), *map(str, s)]) for (p, n), s in LFW_ROWS.items()]
    write(table or root / "lfw_attributes.txt", "\n".join(lines) + "\n")
    return root


def test_lfw_reads_people_binarised_attributes_and_drops_images_without_a_row(tmp_path):
    with pytest.warns(UserWarning, match="dropped 1 of 5 images"):
        ds = load_lfw(make_lfw(tmp_path), attributes=("Male", "Asian", "Middle_Aged"), image_size=4)
    assert ds.name == "lfw" and len(ds) == 4
    assert ds.label_names == ["Alice_Smith", "Bob_Jones", "Carol_White"]
    assert ds.labels.tolist() == [0, 0, 1, 2]
    assert ds.attribute_names == ["Male", "Asian", "Middle_Aged"]
    assert ds.attribute("Male").tolist() == [0, 0, 1, 0]
    assert ds.attribute("Asian").tolist() == [1, 1, 0, 0]
    assert ds.attribute("Middle_Aged").tolist() == [0, 1, 1, 0]  # a score of exactly 0 is "no"
    assert ds.attribute_value_names["Male"] == ["no", "yes"]
    for i, colour in enumerate([RED, GREEN, BLUE, WHITE]):
        assert_colour(ds[i][0], colour, 4)


@pytest.mark.parametrize("people_folder", ["lfw-deepfunneled", ""])
def test_lfw_accepts_deepfunneled_and_people_folder_as_root(tmp_path, people_folder):
    table = tmp_path / "elsewhere" / "attrs.txt"
    root = make_lfw(tmp_path / "data", people_folder, table=table)
    with pytest.warns(UserWarning, match="dropped 1"):
        ds = load_lfw(root, attributes_file=table, attributes=("Middle Aged",))
    assert len(ds) == 4 and ds.attribute_names == ["Middle Aged"]


def test_lfw_min_images_per_person_counts_kept_images(tmp_path):
    with pytest.warns(UserWarning):
        ds = load_lfw(make_lfw(tmp_path), min_images_per_person=2)
    assert ds.label_names == ["Alice_Smith"] and len(ds) == 2


def test_lfw_no_image_with_a_row_is_an_error(tmp_path):
    root = make_lfw(tmp_path)
    write(root / "lfw_attributes.txt", "#\n#\tperson\timagenum\tMale\nSomeone Else\t1\t0.5\n")
    with (
        pytest.warns(UserWarning, match="dropped 5 of 5"),
        pytest.raises(ValueError, match="no image"),
    ):
        load_lfw(root)


def test_lfw_unknown_attribute_lists_columns(tmp_path):
    with pytest.raises(ValueError, match="'Female'.*Male, Asian, Middle Aged"):
        load_lfw(make_lfw(tmp_path), attributes=("Female",))


def test_lfw_missing_people_folder_or_table(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"lfw.*lfw-deepfunneled"):
        load_lfw(tmp_path / "empty")
    root = make_lfw(tmp_path / "data")
    (root / "lfw_attributes.txt").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_lfw(root)
    assert str(root / "lfw_attributes.txt") in str(err.value) and "Kumar" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("Bob Jones\t1\t1.56", "Bob Jones\t1\tx"), "line 5"),
        (lambda s: s.replace("Bob Jones\t1\t", "Bob Jones\tone\t"), "line 5"),
        (lambda s: s.replace("\t-1.88", ""), "line 5"),
        (lambda s: "\n".join(s.splitlines()[2:]), "line 1: data before the header"),
        (lambda s: "\n".join(s.splitlines()[:2]).replace("person", "who"), "no header line"),
    ],
)
def test_lfw_malformed_table_names_file_and_line(tmp_path, edit, message):
    root = make_lfw(tmp_path)
    table = root / "lfw_attributes.txt"
    table.write_text(edit(table.read_text()))
    with pytest.raises(ValueError, match=message) as err:
        load_lfw(root)
    assert str(table) in str(err.value)


def test_lfw_badly_named_image_is_an_error(tmp_path):
    root = make_lfw(tmp_path)
    save_image(root / "lfw" / "Bob_Jones" / "Robert_0001.jpg", RED)
    (root / "lfw" / "Bob_Jones" / "notes.txt").write_text("not an image, ignored")
    with pytest.raises(ValueError, match="Robert_0001.jpg should be named Bob_Jones_<number>"):
        load_lfw(root)


# -- CUB-200-2011 -----------------------------------------------------------------------------
CUB_ATTRIBUTES = [
    "has_primary_color::blue",
    "has_primary_color::black",
    "has_primary_color::white",
    "has_size::small_(5_-_9_in)",
    "has_size::large_(16_-_32_in)",
]
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
CUB_IMAGES = [  # (class id, is_training, colour)
    (1, 1, RED),
    (1, 0, GREEN),
    (2, 1, BLUE),
    (3, 1, WHITE),
    (3, 0, YELLOW),
]
# (is_present, certainty) of attributes 1..5 per image
CUB_MARKS = [
    [(1, 3), (1, 4), (0, 4), (1, 2), (0, 1)],  # blue and black: black is more certain
    [(1, 3), (0, 2), (1, 3), (0, 1), (1, 4)],  # blue and white tie: the lower id (blue) wins
    [(0, 4), (0, 4), (0, 4), (0, 1), (0, 1)],  # no colour present: "none"
    [(0, 1), (0, 1), (1, 2), (0, 1), (1, 3)],  # white
    [(0, 1), (1, 1), (0, 1), (1, 4), (0, 1)],  # black, even if only guessed
]


def make_cub(root: Path, attributes_txt_in_parent: bool = True) -> Path:
    base = root / "CUB_200_2011"
    images, marks = [], []
    for i, (cls, _, colour) in enumerate(CUB_IMAGES, start=1):
        rel = f"{CUB_CLASSES[cls - 1]}/{CUB_CLASSES[cls - 1][4:]}_{i:04d}_{i}.jpg"
        images.append(f"{i} {rel}")
        save_image(base / "images" / rel, colour, size=16)
        for aid, (present, certainty) in enumerate(CUB_MARKS[i - 1], start=1):
            marks.append(f"{i} {aid} {present} {certainty} 12.5")
    # the left 6 columns of image 1 are red, the rest blue: its box keeps only red
    img = Image.new("RGB", (16, 16), BLUE)
    img.paste(RED, (0, 0, 8, 16))
    img.save(base / "images" / images[0].split()[1], quality=95, subsampling=0)
    marks[1] += " 0 7.5"  # some official rows carry extra columns
    write(base / "images.txt", "\n".join(images) + "\n")
    write(base / "classes.txt", "".join(f"{k} {c}\n" for k, c in enumerate(CUB_CLASSES, start=1)))
    write(
        base / "image_class_labels.txt",
        "".join(f"{i} {c}\n" for i, (c, _, _) in enumerate(CUB_IMAGES, 1)),
    )
    write(
        base / "train_test_split.txt",
        "".join(f"{i} {t}\n" for i, (_, t, _) in enumerate(CUB_IMAGES, 1)),
    )
    write(base / "bounding_boxes.txt", "".join(f"{i} 0.0 0.0 6.0 16.0\n" for i in range(1, 6)))
    write(base / "attributes" / "image_attribute_labels.txt", "\n".join(marks) + "\n")
    names = "".join(f"{k} {a}\n" for k, a in enumerate(CUB_ATTRIBUTES, start=1))
    write((root if attributes_txt_in_parent else base) / "attributes.txt", names)
    return root


def test_cub_reads_classes_partition_family_and_binary_attributes(tmp_path):
    ds = load_cub(
        make_cub(tmp_path),
        attributes=("has_primary_color", "has_size::large_(16_-_32_in)"),
        image_size=4,
    )
    assert ds.name == "cub" and len(ds) == 5
    assert ds.label_names == CUB_CLASSES
    assert ds.labels.tolist() == [0, 0, 1, 2, 2]
    assert ds.partition.dtype == np.dtype("<U5")
    assert ds.partition.tolist() == ["train", "test", "train", "train", "test"]
    assert ds.attribute_value_names == {
        "has_primary_color": ["blue", "black", "white", "none"],
        "has_size::large_(16_-_32_in)": ["no", "yes"],
    }
    assert ds.attribute("has_primary_color").tolist() == [1, 0, 3, 2, 1]
    assert ds.attribute("has_size::large_(16_-_32_in)").tolist() == [0, 1, 0, 1, 0]
    assert ds.bboxes is None
    for i, (_, _, colour) in enumerate(CUB_IMAGES[1:], start=1):
        assert_colour(ds[i][0], colour, 4)


def test_cub_crop_to_bbox_changes_the_image(tmp_path):
    root = make_cub(tmp_path)
    whole = load_cub(root, image_size=8)[0][0]
    assert whole[2].mean() > 0.3  # half blue
    cropped = load_cub(root, image_size=8, crop_to_bbox=True)
    assert cropped.bboxes.tolist()[0] == [0.0, 0.0, 6.0, 16.0]
    assert_colour(cropped[0][0], RED, 8)


def test_cub_accepts_base_folder_attributes_txt_inside_and_no_attributes(tmp_path):
    base = make_cub(tmp_path, attributes_txt_in_parent=False) / "CUB_200_2011"
    assert load_cub(base).attribute("has_primary_color").tolist() == [1, 0, 3, 2, 1]
    shutil.rmtree(base / "attributes")
    (base / "attributes.txt").unlink()
    (base / "bounding_boxes.txt").unlink()
    ds = load_cub(base, attributes=())  # attribute and box files are only needed when used
    assert ds.attribute_names == [] and ds.attributes.shape == (5, 0)


def test_cub_unknown_attribute_lists_families(tmp_path):
    with pytest.raises(ValueError, match="'has_wing_color'.*has_primary_color, has_size"):
        load_cub(make_cub(tmp_path), attributes=("has_wing_color",))


@pytest.mark.parametrize(
    "missing",
    [
        "images",
        "images.txt",
        "image_class_labels.txt",
        "classes.txt",
        "train_test_split.txt",
        "attributes/image_attribute_labels.txt",
        "bounding_boxes.txt",
        "../attributes.txt",
    ],
)
def test_cub_missing_file_names_path_and_layout(tmp_path, missing):
    base = make_cub(tmp_path) / "CUB_200_2011"
    path = base / missing
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_cub(tmp_path, crop_to_bbox=True)
    expected = tmp_path / "attributes.txt" if missing.startswith("..") else path
    assert str(expected) in str(err.value)
    assert "CUB_200_2011/ holding images/, images.txt" in str(err.value)


def test_cub_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*layout"):
        load_cub(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("images.txt", lambda s: s.replace("3 002", "3 x 002"), "line 3"),
        ("images.txt", lambda s: s.replace("4 003", "four 003"), "line 4"),
        ("images.txt", lambda s: s + "2 extra.jpg\n", "line 6: id 2 appears twice"),
        ("image_class_labels.txt", lambda s: s.replace("5 3", "5 4"), "line 5: class '4'"),
        ("image_class_labels.txt", lambda s: s.replace("5 3\n", ""), "no line for image 5"),
        ("classes.txt", lambda s: s.replace("3 003", "4 003"), "number its classes 1..3"),
        ("train_test_split.txt", lambda s: s.replace("2 0", "2 2"), "line 2"),
        ("bounding_boxes.txt", lambda s: s.replace("4 0.0", "4 zero"), "line 4"),
        ("attributes/image_attribute_labels.txt", lambda s: s.replace("3 2 0 4", "3 2 2 4"), "line 12"),
        ("attributes/image_attribute_labels.txt", lambda s: s.replace("3 2 0 4 12.5", "3 2 0"), "line 12"),
        ("attributes/image_attribute_labels.txt", lambda s: s.replace("3 2 0 4 12.5\n", ""), "image 3, attribute 2"),
    ],
)  # fmt: skip
def test_cub_malformed_line_names_file_and_line(tmp_path, file, edit, message):
    base = make_cub(tmp_path) / "CUB_200_2011"
    (base / file).write_text(edit((base / file).read_text()))
    with pytest.raises(ValueError, match=message) as err:
        load_cub(tmp_path, crop_to_bbox=True)
    assert str(base / file) in str(err.value)


# -- generic folder + CSV ---------------------------------------------------------------------
def make_folder(root: Path, outside: Path) -> Path:
    """Three PNGs under root/imgs, one given by an absolute path, and labels.csv."""
    (root / "imgs").mkdir(parents=True)
    for name, colour in [("a", RED), ("b", GREEN), ("c", BLUE)]:
        Image.new("RGB", (8, 8), colour).save(root / "imgs" / f"{name}.png")
    Image.new("RGB", (8, 8), WHITE).save(outside)
    write(
        root / "labels.csv",
        "path,label,gender,age_group\n"
        "imgs/a.png,bob,male,1\n"
        "imgs/b.png, alice ,female,0\n"
        "\n"
        f"{outside},bob,female,2\n"
        "imgs/c.png,carol,female,0\n",
    )
    return root


def test_folder_csv_maps_string_labels_and_attributes(tmp_path):
    root = make_folder(tmp_path / "data", tmp_path / "w.png")
    ds = load_folder_csv(root, image_size=4, allow_outside_root=True)  # w.png is outside root
    assert ds.name == "folder" and len(ds) == 4
    assert ds.label_names == ["alice", "bob", "carol"]
    assert ds.labels.tolist() == [1, 0, 1, 2]
    assert ds.attribute_names == ["gender", "age_group"]
    assert ds.attribute_value_names["gender"] == ["female", "male"]
    assert ds.attribute("gender").tolist() == [1, 0, 0, 0]
    assert ds.attribute("age_group").tolist() == [1, 0, 2, 0]  # integer column kept as codes
    assert ds.attribute_value_names["age_group"] == ["0", "1", "2"]
    for i, colour in enumerate([RED, GREEN, WHITE, BLUE]):
        x = ds[i][0]
        assert x.shape == (3, 4, 4)
        assert torch.equal(x, torch.tensor(colour).float().view(3, 1, 1).expand(3, 4, 4) / 255)


def test_folder_csv_other_file_name_integer_labels_and_no_attributes(tmp_path):
    Image.new("RGB", (8, 8), RED).save(tmp_path / "x.png")
    write(tmp_path / "meta" / "list.csv", "path,label\nx.png,10\nx.png,2\n")
    ds = load_folder_csv(tmp_path, csv_file="meta/list.csv", name="mine")
    assert ds.name == "mine" and ds.labels.tolist() == [10, 2]  # not sorted as strings
    assert ds.attribute_names == [] and ds.attributes.shape == (2, 0)
    with pytest.raises(FileNotFoundError, match=r"meta/x\.png"):  # paths are relative to root
        load_folder_csv(tmp_path / "meta", csv_file=tmp_path / "meta" / "list.csv")


def test_folder_csv_missing_root_csv_or_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*path,label"):
        load_folder_csv(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        load_folder_csv(tmp_path)
    assert str(tmp_path / "labels.csv") in str(err.value) and "path,label" in str(err.value)
    root = make_folder(tmp_path / "data", tmp_path / "w.png")
    (root / "imgs" / "c.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"1 image\(s\) listed in .* missing, first: .*c\.png"
    ):
        load_folder_csv(root, allow_outside_root=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: expected a header"),
        ("file,label\na.png,1\n", "line 1: expected a header"),
        ("path,label,g,g\na.png,1,x,y\n", "line 1: expected a header"),
        ("path,label,g\na.png,1,x\nb.png,2\n", "line 3: expected 3 values"),
        ("path,label,g\na.png,1,x\n\nb.png,,y\n", "line 4: expected 3 values"),
        ("path,label\n", "lists no images"),
    ],
)
def test_folder_csv_malformed(tmp_path, text, message):
    write(tmp_path / "labels.csv", text)
    with pytest.raises(ValueError, match=message) as err:
        load_folder_csv(tmp_path)
    assert str(tmp_path / "labels.csv") in str(err.value)

"""Bad files at the data boundary get a clear error naming the file, row or column (issue 14).

Image folders: truncated, empty and non-image files (an error naming the file when loaded, or
skipped up front with ``skip_unreadable``), paths that leave the dataset folder (``../``, absolute
paths, symbolic links). CSV tables: repeated header names, ids that only look like integers
(``007``, ``²``), text that is not UTF-8. Through the library and ``fairmetric.cli.main`` (exit 2).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fairmetric.cli import main
from fairmetric.data.csv_table import typed_column
from fairmetric.data.folder import load_folder_csv
from fairmetric.data.registry import build_splits
from fairmetric.sources import load_source
from fairmetric.train import load_config
from fairmetric.train.config import save_config

QUIET = ["--bootstrap", "0", "--no-progress", "--no-linear-probe"]


def png(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def truncated_jpeg(path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


BAD_FILES = {
    "truncated": ("imgs/p0_0.jpg", truncated_jpeg, "truncated"),
    "empty": ("imgs/p1_0.png", lambda p: p.write_bytes(b""), "the file is empty"),
    "not_an_image": ("imgs/p2_0.png", lambda p: p.write_text("hello"), "not an image format"),
}


def make_folder(root: Path, people: int = 8, per_person: int = 4) -> Path:
    """``people`` people with ``per_person`` random PNGs each, and labels.csv."""
    rows = ["path,label,skin"]
    for person in range(people):
        for k in range(per_person):
            rel = f"imgs/p{person}_{k}.png"
            png(root / rel, seed=person * 100 + k)
            rows.append(f"{rel},person{person},{'dark' if person % 2 else 'light'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def with_bad_files(root: Path, which: list[str]) -> Path:
    """Replace the first image of some people by bad files (same rows, new names)."""
    text = (root / "labels.csv").read_text(encoding="utf-8")
    for key in which:
        rel, write, _ = BAD_FILES[key]
        person = rel.split("/")[1].split("_")[0]
        (root / f"imgs/{person}_0.png").unlink()
        write(root / rel)
        text = text.replace(f"imgs/{person}_0.png,", f"{rel},")
    (root / "labels.csv").write_text(text, encoding="utf-8")
    return root


# -- unreadable images ------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(BAD_FILES))
def test_unreadable_image_names_the_file_and_the_fix(tmp_path, key):
    root = with_bad_files(make_folder(tmp_path / "data"), [key])
    ds = load_folder_csv(root, image_size=8)  # decoded lazily: loading the table works
    rel, _, reason = BAD_FILES[key]
    index = next(i for i, p in enumerate(ds.paths) if p.name == Path(rel).name)
    with pytest.raises(ValueError, match=f"cannot read image .*{Path(rel).name}: .*{reason}") as e:
        ds[index]
    assert "skip_unreadable" in str(e.value) and "Traceback" not in str(e.value)
    assert ds[index + 1][0].shape == (3, 8, 8)  # the others still load


def test_skip_unreadable_drops_counts_and_names_the_files(tmp_path):
    root = with_bad_files(make_folder(tmp_path / "data"), list(BAD_FILES))
    with pytest.warns(UserWarning, match=r"skipped 3 unreadable image\(s\) of 32") as rec:
        ds = load_folder_csv(root, image_size=8, skip_unreadable=True)
    message = str(rec[0].message)
    for rel, _, reason in BAD_FILES.values():
        assert Path(rel).name in message and reason in message
    assert len(ds) == 29
    assert [Path(p).name for p, _ in ds.skipped] == ["p0_0.jpg", "p1_0.png", "p2_0.png"]
    assert all(ds[i][0].shape == (3, 8, 8) for i in range(len(ds)))
    # the labels of the kept rows are still right
    assert [ds.label_names[c] for c in ds.labels[:3]] == ["person0"] * 3
    assert ds.labels.tolist().count(ds.label_names.index("person3")) == 4


def test_skip_unreadable_from_the_config_and_kept_by_splits(tmp_path):
    root = with_bad_files(make_folder(tmp_path / "data"), ["truncated", "empty"])
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable"):
        splits = build_splits(
            "folder", root=str(root), image_size=8, params={"skip_unreadable": True}
        )
    assert sum(len(s) for s in splits.values()) == 30
    assert len(splits["train"].skipped) == 2  # reachable from the class-disjoint splits


def test_every_image_unreadable_is_an_error(tmp_path):
    root = tmp_path / "data"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "a.png").write_bytes(b"")
    (root / "labels.csv").write_text("path,label\nimgs/a.png,x\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"none of the 1 images listed in .* can be read: .*a\.png"
    ):
        load_folder_csv(root, skip_unreadable=True)


@pytest.mark.parametrize("flag", ["skip_unreadable", "allow_outside_root"])
def test_flags_must_be_booleans(tmp_path, flag):
    root = make_folder(tmp_path / "data")
    with pytest.raises(ValueError, match=f"{flag} must be true or false, got 'yes'"):
        load_folder_csv(root, **{flag: "yes"})


# -- paths must stay inside the dataset folder ------------------------------------------------
def _with_row(root: Path, path: str) -> Path:
    text = (root / "labels.csv").read_text(encoding="utf-8")
    (root / "labels.csv").write_text(text + f"{path},intruder,dark\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink_file", "symlink_folder"])
def test_paths_outside_the_root_are_refused_naming_the_row(tmp_path, kind):
    root = make_folder(tmp_path / "data", people=2, per_person=2)
    png(tmp_path / "outside" / "o.png", seed=9)
    if kind == "dotdot":
        rel = "../../../../../../../../etc/passwd"
    elif kind == "absolute":
        rel = str(tmp_path / "outside" / "o.png")
    elif kind == "symlink_file":
        os.symlink(tmp_path / "outside" / "o.png", root / "imgs" / "link.png")
        rel = "imgs/link.png"
    else:
        os.symlink(tmp_path / "outside", root / "elsewhere")
        rel = "elsewhere/o.png"
    _with_row(root, rel)
    with pytest.raises(
        ValueError, match=r"labels\.csv line 6: image path .* outside the dataset"
    ) as e:
        load_folder_csv(root)
    assert repr(rel) in str(e.value) and "allow_outside_root" in str(e.value)
    if kind != "dotdot":  # the user may opt out
        ds = load_folder_csv(root, allow_outside_root=True, image_size=8)
        assert len(ds) == 5 and ds[4][0].shape == (3, 8, 8)


def test_paths_outside_the_root_through_the_config_are_refused(tmp_path):
    root = _with_row(make_folder(tmp_path / "data", people=2, per_person=2), "../x.png")
    png(tmp_path / "x.png", seed=3)
    with pytest.raises(ValueError, match=r"line 6: image path '\.\./x\.png'"):
        build_splits("folder", root=str(root))
    splits = build_splits("folder", root=str(root), params={"allow_outside_root": True})
    assert sum(len(s) for s in splits.values()) == 5


def test_links_and_dots_that_stay_inside_are_fine(tmp_path):
    root = make_folder(tmp_path / "data", people=2, per_person=2)
    os.symlink(root / "imgs" / "p0_0.png", root / "imgs" / "again.png")
    _with_row(root, "imgs/../imgs/again.png")
    assert len(load_folder_csv(root)) == 5


# -- CSV tables -------------------------------------------------------------------------------
def _npy(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "emb.npy"
    np.save(path, np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32))
    return path


def test_repeated_header_name_is_refused_naming_the_column(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("label,grp,grp\n0,a,b\n1,a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: .*column 'grp' appears twice \(columns 2 and 3"):
        load_source(_npy(tmp_path, 2), labels_csv=csv_path)
    root = make_folder(tmp_path / "data", people=2, per_person=2)
    text = (root / "labels.csv").read_text().replace("path,label,skin", "path,label,skin, skin ")
    (root / "labels.csv").write_text(text.replace("\n", ",x\n").replace("skin ,x", "skin "))
    with pytest.raises(ValueError, match=r"column 'skin' appears twice"):
        load_folder_csv(root)


def test_repeated_header_name_exits_2_through_the_cli(tmp_path, capsys):
    csv_path = tmp_path / "labels.csv"
    rows = "\n".join(f"{i % 5},a,b" for i in range(20))
    csv_path.write_text("label,grp,grp\n" + rows + "\n", encoding="utf-8")
    code = main(["audit", str(_npy(tmp_path, 20)), "--labels", str(csv_path), *QUIET])
    assert code == 2
    err = capsys.readouterr().err
    assert "column 'grp' appears twice" in err and "Traceback" not in err


def test_leading_zero_ids_stay_distinct_and_odd_digits_do_not_crash(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("label,site\n007,²\n7,1\n007,²\n7,1\n", encoding="utf-8")
    emb = load_source(_npy(tmp_path, 4), labels_csv=csv_path)
    assert emb.label_names == ["007", "7"] and emb.labels.tolist() == [0, 1, 0, 1]
    assert emb.attribute_value_names["site"] == ["1", "²"]
    root = make_folder(tmp_path / "data", people=2, per_person=2)
    text = (root / "labels.csv").read_text().replace("person0", "007").replace("person1", "7")
    (root / "labels.csv").write_text(text, encoding="utf-8")
    ds = load_folder_csv(root)
    assert ds.label_names == ["007", "7"] and ds.num_classes == 2


def test_typed_column():
    assert typed_column(["0", "10", "2"]) == [0, 10, 2]  # plain integers stay integer codes
    assert typed_column(["007", "7"]) == ["007", "7"]
    assert typed_column(["²", "1"]) == ["²", "1"]
    assert typed_column(["-1", "2"]) == ["-1", "2"]
    assert typed_column(["904512", "1"]) == ["904512", "1"]  # ids, not codes: no 900k names
    assert typed_column(["1" * 40]) == ["1" * 40]
    assert typed_column([]) == []


def test_labels_csv_that_is_not_utf8_names_the_file(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes("label,grp\n0,caf\u00e9\n1,b\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"labels\.csv is not UTF-8 text .*save it as UTF-8"):
        load_source(_npy(tmp_path, 2), labels_csv=csv_path)


# -- the encoder route of the CLI reads image folders -----------------------------------------
@pytest.fixture
def encoder(tmp_path, monkeypatch) -> str:
    (tmp_path / "fm_bad_input_encoders.py").write_text(
        "def flat(x):\n    return x.flatten(1)[:, :6].numpy()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fm_bad_input_encoders:flat"


def _folder_config(tmp_path: Path, root: Path) -> Path:
    config = tmp_path / "folder.yaml"
    overrides = ["data.name=folder", f"data.root={root}", "data.image_size=8", "data.params={}"]
    save_config(load_config(None, overrides), config)
    return config


def test_cli_unreadable_image_exits_2_then_skips_with_the_flag(tmp_path, encoder, capsys):
    root = with_bad_files(make_folder(tmp_path / "data"), ["truncated", "not_an_image"])
    config = _folder_config(tmp_path, root)
    argv = ["audit", encoder, "--config", str(config), "--device", "cpu", "--split", "train"]
    assert main([*argv, *QUIET]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "p0_0.jpg" in err and "skip_unreadable" in err
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        code = main([*argv, "--set", "data.params.skip_unreadable=true", *QUIET])
    assert code == 0
    assert any("skipped 2 unreadable image(s)" in str(w.message) for w in rec)


def test_cli_path_outside_root_exits_2(tmp_path, encoder, capsys):
    root = _with_row(make_folder(tmp_path / "data"), "../../../../etc/passwd")
    config = _folder_config(tmp_path, root)
    argv = ["audit", encoder, "--config", str(config), "--device", "cpu", *QUIET]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "line 34: image path '../../../../etc/passwd'" in err
    assert "allow_outside_root" in err


# -- digits that str.isdigit accepts but int refuses, in the official layouts -----------------
def test_superscript_digits_in_official_layouts_are_named_not_crashes(tmp_path):
    from fairmetric.data.celeba import load_celeba
    from fairmetric.data.cub import load_cub
    from tests.data.test_loaders import make_celeba, make_cub

    root = make_celeba(tmp_path / "celeba")
    ids = root / "identity_CelebA.txt"
    ids.write_text(ids.read_text().replace("000004.jpg 3", "000004.jpg ²"))
    with pytest.raises(
        ValueError, match=r"identity_CelebA\.txt line 4: identity '²' is no integer"
    ):
        load_celeba(root)
    base = make_cub(tmp_path / "cub") / "CUB_200_2011"
    labels = base / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("5 3", "5 ³"))
    with pytest.raises(ValueError, match=r"image_class_labels\.txt line 5: class '³'"):
        load_cub(tmp_path / "cub")
    images = base / "images.txt"
    images.write_text(images.read_text().replace("4 003", "⁴ 003"))
    with pytest.raises(ValueError, match=r"images\.txt line 4: expected an integer id"):
        load_cub(tmp_path / "cub")


def test_strings_mixed_with_numbers_are_refused_not_merged():
    from fairmetric.data.dataset import encode_column
    from fairmetric.embeddings import EmbeddingSet

    with pytest.raises(ValueError, match=r"column 'labels' mixes strings and other values"):
        EmbeddingSet(embeddings=np.ones((2, 2)), labels=[7, "7"])
    with pytest.raises(ValueError, match=r"column 'g' mixes .*'007' and 7"):
        encode_column(["007", 7], name="g")
    codes, names = encode_column(["007", "7", "007"], name="g")
    assert codes.tolist() == [0, 1, 0] and names == ["007", "7"]


def test_lfw_repeated_attribute_column_is_refused(tmp_path):
    from fairmetric.data.lfw import load_lfw
    from tests.data.test_loaders import make_lfw

    root = make_lfw(tmp_path)
    table = root / "lfw_attributes.txt"
    table.write_text(table.read_text().replace("\tAsian\t", "\tMale\t", 1))
    with pytest.raises(
        ValueError, match=r"lfw_attributes\.txt line 2: column 'Male' appears twice"
    ):
        load_lfw(root)


@pytest.mark.filterwarnings("ignore:LFW. dropped")
@pytest.mark.parametrize("dataset", ["celeba", "cub", "lfw"])
def test_official_layouts_name_and_skip_unreadable_images(tmp_path, dataset):
    from fairmetric.data.celeba import load_celeba
    from fairmetric.data.cub import load_cub
    from fairmetric.data.lfw import load_lfw
    from tests.data.test_loaders import make_celeba, make_cub, make_lfw

    make, load, pattern = {
        "celeba": (make_celeba, load_celeba, "img_align_celeba/000003.jpg"),
        "cub": (make_cub, load_cub, "images/002.Laysan_Albatross/*.jpg"),
        "lfw": (make_lfw, load_lfw, "lfw/Carol_White/Carol_White_0001.jpg"),
    }[dataset]
    root = make(tmp_path)
    bad = next(root.rglob(pattern) if dataset != "cub" else (root / "CUB_200_2011").glob(pattern))
    truncated_jpeg(bad)
    ds = load(root, image_size=4)
    index = [Path(p).name for p in ds.paths].index(bad.name)
    with pytest.raises(ValueError, match=f"cannot read image .*{bad.name}: .*truncated") as e:
        ds[index]
    assert "data.params.skip_unreadable=true" in str(e.value)
    with pytest.warns(
        UserWarning, match=rf"skipped 1 unreadable image\(s\) of {len(ds)} .*{bad.name}"
    ):
        kept = load(root, image_size=4, skip_unreadable=True)
    assert len(kept) == len(ds) - 1 and bad.name not in [Path(p).name for p in kept.paths]
    assert [Path(p).name for p, _ in kept.skipped] == [bad.name]
    assert all(kept[i][0].shape == (3, 4, 4) for i in range(len(kept)))
    if dataset != "lfw":  # the official partition follows the kept rows
        assert len(kept.partition) == len(kept)


def test_unreadable_image_message_stays_one_line_from_a_dataloader_worker(tmp_path):
    from torch.utils.data import DataLoader

    from fairmetric.data.dataset import UnreadableImageError

    root = with_bad_files(make_folder(tmp_path / "data", people=3, per_person=2), ["empty"])
    ds = load_folder_csv(root, image_size=8)
    with pytest.raises(UnreadableImageError) as e:
        list(DataLoader(ds, batch_size=2, num_workers=1))
    message = str(e.value)
    assert message.startswith("cannot read image ") and "p1_0.png: the file is empty" in message
    assert "Traceback" not in message and "\n" not in message
    assert message.endswith("(in DataLoader worker process 0)")


# -- properties: a clear ValueError or a correct result, never another exception ---------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=6), min_size=1, max_size=12))
def test_typed_column_never_merges_distinct_values(values):
    out = typed_column(values)
    assert len(out) == len(values)
    assert len(set(out)) == len(set(values))  # distinct stays distinct, equal stays equal
    assert all(str(o) == v for o, v in zip(out, values))


_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(_CELL, min_size=1, max_size=4),
    rows=st.lists(st.lists(_CELL, min_size=1, max_size=4), min_size=0, max_size=5),
    raw=st.binary(max_size=40),
    use_raw=st.booleans(),
)
def test_labels_csv_gives_a_set_or_a_clear_error(tmp_path, header, rows, raw, use_raw):
    import csv as csv_module

    csv_path = tmp_path / "labels.csv"
    if use_raw:
        csv_path.write_bytes(raw)
    else:
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            csv_module.writer(f).writerows([header, *rows])
    n = max(1, len(rows))
    try:
        emb = load_source(_npy(tmp_path, n), labels_csv=csv_path)
    except ValueError as e:
        assert str(e) and "Traceback" not in str(e)
        return
    assert len(emb) == n and len(emb.label_names) >= 1


@pytest.mark.parametrize("values", [[0.0, None, -0.0], [None, None, 1], ["a", None, "b"]])
def test_missing_values_are_refused_not_made_a_class(values):
    """Found by tests/test_properties.py: None became a class named 'None'."""
    from fairmetric.data.dataset import encode_column

    with pytest.raises(ValueError, match=r"column 'label' has missing values .* row [01];"):
        encode_column(values, name="label")


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("colored_digits", {"copies": "abc"}, r"data.params.copies: expected a number"),
        ("identities", {"p_majority": "high"}, r"data.params.p_majority: expected a number"),
        ("gaussian", {"n_classes": [4]}, r"data.params.n_classes: expected a number"),
    ],
)
def test_data_params_of_the_wrong_kind_name_the_key(name, params, match):
    """A string for a number reached the builder and failed there as a TypeError (exit 3)."""
    from fairmetric.data import build_splits

    with pytest.raises(ValueError, match=match):
        build_splits(name, params=params)

"""Audit a released timm image model, with local weights, on a folder of images + a CSV.

Run: python examples/audit_image_model.py [--model NAME --weights FILE] [--images FOLDER
     --table CSV] [--bootstrap N] [--out DIR]

Without arguments it builds everything in a temporary folder, offline: 32x32 images of eight
people (three each; their skin attribute sets the brightness), listed in ``people.csv`` with
the columns ``file,person,skin,camera``, and a checkpoint of timm's tiny ``test_resnet`` standing
in for released weights (give ``--model resnet50 --weights resnet50.safetensors`` for a real
one). fairmetric loads the weights strictly, preprocesses each image the way the model expects
(timm's data config: resize, centre crop, normalisation at the model's input size), audits each
skin group and writes report.json, report.md and report.html. Nothing is downloaded. The
command-line equivalent is

    fairmetric audit test_resnet --weights FILE --images FOLDER --table people.csv \
        --path-column file --label-column person --attribute-columns skin --out DIR

The same model embeds any torchvision dataset from Python (``embed_images``), shown last.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import fairmetric
from fairmetric.report import write_report
from fairmetric.report.writers import render_summary
from fairmetric.sources import embed_images, load_image_source


def make_images(folder: Path, *, people: int = 8, per_person: int = 3) -> Path:
    """A folder of small images and ``people.csv`` naming them (columns chosen freely)."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = ["file,person,skin,camera"]
    for p in range(people):
        skin = "dark" if p % 2 else "light"
        face = rng.random((32, 32, 3)) * (0.45 if skin == "dark" else 0.9)
        for j in range(per_person):
            pixels = np.clip(face + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)
            name = f"img/person{p}_{j}.png"
            Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / name)
            rows.append(f"{name},person{p},{skin},cam{j}")
    (folder / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def save_standin_weights(path: Path, model: str) -> Path:
    """A checkpoint as released ones are (classifier included): here random, seeded."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(timm.create_model(model, pretrained=False).state_dict(), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet", help="timm model name")
    parser.add_argument("--weights", type=Path, help="its local weights (default: a stand-in)")
    parser.add_argument("--images", type=Path, help="image folder (default: built in temp)")
    parser.add_argument("--table", default="people.csv", help="CSV naming the images")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: temp)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fairmetric-image-audit-"))
    out = args.out or work / "audit"
    images = args.images or make_images(work / "faces")
    weights = args.weights or save_standin_weights(work / f"{args.model}.safetensors", args.model)

    # 1. the model with its weights and its own preprocessing, on the images the CSV names
    #    (columns by name; ids are the paths relative to the folder)
    emb = load_image_source(
        args.model,
        weights=weights,
        images=images,
        table=args.table,
        path_column="file",
        label_column="person",
        attribute_columns=["skin"],
        device="cpu",
    )
    print(
        f"embedded {len(emb)} images with {args.model} ({emb.metadata['weights']}): dim {emb.dim}"
    )
    print(f"preprocessing: {emb.metadata['preprocess']}")

    # 2. audit the skin groups (few images: small neighbourhoods) and print the summary
    report = fairmetric.audit(
        emb, ks=(1, 2), homophily_k=4, leakage_k=4, bootstrap=args.bootstrap, min_group_size=2
    )
    print(render_summary(report))
    paths = write_report(report, out)
    print("wrote " + ", ".join(str(p) for p in paths.values()))

    # 3. any torchvision dataset of (image, target): labels from the targets, attributes from a
    #    function of the target (or a list, one value per image)
    from torchvision.datasets import FakeData

    data = FakeData(size=12, image_size=(3, 24, 24), num_classes=4)
    fake = embed_images(
        args.model,
        data,
        weights=weights,
        attributes={"half": lambda target: "low" if target < 2 else "high"},
        device="cpu",
    )
    print(f"torchvision FakeData: embedded {len(fake)} images, attributes {fake.attribute_names}")


if __name__ == "__main__":
    main()

"""``fairmetric embed``: embed a data split with a trained model and save an EmbeddingSet."""

from __future__ import annotations

import argparse
from pathlib import Path

from fairmetric.cli.common import (
    OVERRIDES_HELP,
    Formatter,
    add_inference_flags,
    check_output,
    inference_kwargs,
    positive_int,
)

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a data split with a trained model and save an EmbeddingSet",
        formatter_class=Formatter,
        description=(
            "Embed one split of a dataset with a trained model and save the embeddings with their "
            "labels and attributes (.npz or .safetensors). --model is a run folder (its "
            "config.yaml describes the data) or an exported model folder (then give --config).\n\n"
            "Inference is batched and uses the speed settings of the config's train section "
            "(precision, channels_last, num_workers, pin_memory, prefetch_factor), so a model is "
            "embedded the way it was trained; --precision, --num-workers and --channels-last "
            "override them.\n\n"
            "examples:\n  fairmetric embed --model runs/baseline --split test --out emb.npz\n"
            "  fairmetric embed --model runs/baseline --out emb.npz --precision bf16 "
            "--channels-last --num-workers 8"
        ),
    )
    p.add_argument("--model", type=Path, required=True, help="run folder or exported model folder")
    p.add_argument("--split", default="test", help="which split to embed")
    p.add_argument("--out", type=Path, required=True, help="output file (.npz or .safetensors)")
    p.add_argument(
        "--config",
        type=Path,
        help="experiment config describing the data (default: the run's config.yaml)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    p.add_argument("--batch-size", type=positive_int, default=256, help="inference batch size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_inference_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_embed, free_overrides=True)


def _resolve_model_folder(path: Path, config: Path | None) -> tuple[Path, Path]:
    from fairmetric.models.embedder import CONFIG_FILE
    from fairmetric.train.trainer import MODEL_DIR

    if (path / MODEL_DIR / CONFIG_FILE).is_file():
        model_dir = path / MODEL_DIR
        run_config = path / "config.yaml"
        config = config or (run_config if run_config.is_file() else None)
    elif (path / CONFIG_FILE).is_file():
        model_dir = path
    elif not path.exists():
        raise FileNotFoundError(f"--model {path} does not exist")
    else:
        raise FileNotFoundError(
            f"--model {path} is neither a run folder (with {MODEL_DIR}/{CONFIG_FILE}) nor an "
            f"exported model folder (with {CONFIG_FILE})"
        )
    if config is None:
        raise ValueError(f"{path} has no config.yaml describing the data: pass --config")
    return model_dir, config


def _run_embed(args: argparse.Namespace) -> int:
    from fairmetric.models.embed import embed_dataset
    from fairmetric.models.embedder import load_embedder
    from fairmetric.train.config import load_config
    from fairmetric.train.trainer import build_data

    suffix = args.out.suffix
    if suffix not in (".npz", ".safetensors"):
        raise ValueError(f"--out must end in .npz or .safetensors, got {args.out.name!r}")
    check_output(args.out, folder=False)
    model_dir, config = _resolve_model_folder(args.model, args.config)
    cfg = load_config(config, args.overrides)
    splits = build_data(cfg)
    if args.split not in splits:
        raise ValueError(f"unknown split {args.split!r}; this dataset has: {', '.join(splits)}")
    model = load_embedder(model_dir)
    emb = embed_dataset(
        model,
        splits[args.split],
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
        metadata={"model": str(model_dir), "split": args.split, "config": str(config)},
        **inference_kwargs(args, cfg.train),
    )
    emb.save(args.out)
    print(f"wrote {len(emb)} embeddings of dimension {emb.dim} to {args.out}")
    return 0

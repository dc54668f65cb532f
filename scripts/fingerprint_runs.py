"""Fingerprints of short training runs, to show that a refactoring trains bit-identically.

Not a test (it needs the code before the change): run it in a worktree of the old commit and in
this checkout, then compare::

    git worktree add /tmp/before <old-commit>
    (cd /tmp/before && PYTHONPATH=/tmp/before python /path/to/checkout/scripts/fingerprint_runs.py full /tmp/fp/before/full.json)
    python scripts/fingerprint_runs.py full /tmp/fp/after/full.json
    python scripts/fingerprint_runs.py compare /tmp/fp/before/full.json /tmp/fp/after/full.json

Modes: ``full OUT.json [CASES]`` trains every case (2 epochs of 3 batches on coloured digits, or
the tiny Gaussian set) and records its history (losses, fairness terms, hook and reducer logs,
metrics) and hashes of the model, objective, optimiser and RNG state; ``partial DIR [CASES]``
(old code) leaves run folders after epoch 1 and after a mid-epoch crash; ``resume OUT.json DIR
[CASES]`` (new code) resumes them to the end and records the same fingerprint.
"""

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import torch

from fairmetric.train.checkpoint import load_checkpoint
from fairmetric.train.config import load_config
from fairmetric.train.trainer import train

DIG = [
    "data.image_size=16",
    "data.params={p_majority: 0.9, copies: 1, max_shift: 2}",
    "model.embedding_dim=16",
    "train.batches_per_epoch=3",
    "train.device=cpu",
    "train.epochs=2",
    "train.recall_k=[1]",
]
GAU = [
    "name=test_gaussian",
    "data.name=gaussian",
    "data.split=class_disjoint",
    "data.params={n_classes: 16, samples_per_class: 12, dim: 8, nuisance_dim: 8}",
    "model.backbone=mlp",
    "model.embedding_dim=8",
    "model.backbone_kwargs={hidden: 32, layers: 2}",
    "train.batch_size=32",
    "train.m_per_class=4",
    "train.device=cpu",
    "train.epochs=2",
]
CASES = {}
for m in [
    "baseline",
    "parade",
    "spectral",
    "adversarial",
    "reweight",
    "group_dro",
    "epoch_balanced",
    "batch_balanced",
    "hard_mining",
    "smote",
]:
    CASES[f"digits_{m}"] = (f"colored_digits_{m}", DIG)
CASES["digits_mining_smote"] = (
    "colored_digits_hard_mining",
    DIG
    + [
        "data.group_attribute=colour",
        "mitigation.smote.enabled=true",
        "mitigation.hard_mining.selection=proportional",
    ],
)
CASES["digits_parade_adv"] = (
    "colored_digits_parade",
    DIG
    + [
        "objective.parade.decorrelation=adversarial",
        "objective.parade.xi_hidden=16",
        "objective.adversary.attribute=colour",
    ],
)
CASES["gauss_dro_parade"] = (
    None,
    GAU
    + [
        "data.group_attribute=group",
        "objective.group_dro.enabled=true",
        "objective.group_dro.eta=0.5",
        "objective.parade.attributes=[group]",
        "objective.parade.attribute_dim=4",
        "sampling.name=batch_balanced",
        "sampling.proportions={g0: 0.625, g1: 0.375}",
    ],
)
CASES["gauss_mining_smote_epoch"] = (
    None,
    GAU
    + [
        "train.batch_size=16",
        "data.group_attribute=group",
        "mitigation.hard_mining.candidates_per_batch=32",
        "mitigation.hard_mining.selection=proportional",
        "mitigation.smote.enabled=true",
        "sampling.name=epoch_balanced",
        "sampling.mode=under",
        "mitigation.reweight.enabled=true",
        "mitigation.reweight.beta=0.5",
    ],
)
CASES["gauss_spectral_adv"] = (
    None,
    GAU
    + [
        "objective.spectral.coefficient=0.1",
        "objective.adversary.attribute=group",
        "objective.adversary.hidden=8",
        "loss.name=ArcFaceLoss",
        "miner.name=null",
    ],
)


def h(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def sd_hash(sd):
    out = {}

    def walk(prefix, v):
        if torch.is_tensor(v):
            out[prefix] = h(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}", x)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        else:
            out[prefix] = repr(v)

    walk("", sd)
    return out


def untimed(hist):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in hist]


def fingerprint(out):
    ck = load_checkpoint(out / "checkpoint.pt")
    return {
        "history": untimed(ck["history"]),
        "model": sd_hash(ck["model"]),
        "objective": sd_hash(ck["objective"]),
        "optimizer": sd_hash(ck["optimizer"]["state"]),
        "rng": sd_hash(ck["rng"]),
    }


def cfg_of(case, extra=()):
    path, ov = CASES[case]
    return load_config(path, list(ov) + list(extra))


def quiet(cfg, out, **kw):
    with contextlib.redirect_stderr(io.StringIO()):
        return train(cfg, out, progress=False, log=lambda m: None, **kw)


mode, dest = sys.argv[1], Path(sys.argv[2])
only = sys.argv[3:] or list(CASES)
res = {}
if mode == "full":
    for case in only:
        out = dest.parent / "runs" / case
        quiet(cfg_of(case), out)
        res[case] = fingerprint(out)
        print(case, res[case]["history"][-1]["loss"], flush=True)
    dest.write_text(json.dumps(res, indent=1, sort_keys=True))
elif mode == "compare":
    a, b = json.loads(dest.read_text()), json.loads(Path(sys.argv[3]).read_text())
    bad = {k: [f for f in a[k] if a[k][f] != b.get(k, {}).get(f)] for k in a}
    bad = {k: v for k, v in bad.items() if v}
    print(f"{len(a)} cases; differing: {bad or 'none'}")
    sys.exit(1 if bad else 0)
elif mode == "partial":  # old code: 1 epoch of 2, and a mid-epoch checkpoint
    for case in only:
        quiet(cfg_of(case, ["train.epochs=1"]), dest / case / "epoch1")
        from fairmetric.train import trainer as T

        step_cls = T.TrainStep
        fwd = step_cls.forward
        n = {"n": 0}

        def crash(self, *a, n=n, fwd=fwd):
            n["n"] += 1
            if n["n"] == 3 + 3:
                raise KeyboardInterrupt
            return fwd(self, *a)

        step_cls.forward = crash
        try:
            quiet(cfg_of(case, ["train.checkpoint_every=2"]), dest / case / "mid")
        except KeyboardInterrupt:
            pass
        step_cls.forward = fwd
        print(case, "partial ok", flush=True)
elif mode == "resume":
    src = Path(sys.argv[3])
    only = sys.argv[4:] or list(CASES)
    for case in only:
        quiet(cfg_of(case), src / case / "epoch1", resume=True)
        res[case + "/epoch1"] = fingerprint(src / case / "epoch1")
        quiet(cfg_of(case, ["train.checkpoint_every=2"]), src / case / "mid", resume=True)
        res[case + "/mid"] = fingerprint(src / case / "mid")
        print(case, "resumed", flush=True)
    dest.write_text(json.dumps(res, indent=1, sort_keys=True))

"""Tests for fairmetric.losses.terms.parade: the PARADE term's options, diagnostics and config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_metric_learning.losses import TripletMarginLoss

from fairmetric.data.gaussian import make_gaussian_groups
from fairmetric.losses import Batch, Objective, ObjectiveContext
from fairmetric.losses.decorrelation import AdversarialDecorrelation, RVDecorrelation
from fairmetric.losses.terms import ParadeConfig, ParadeTerm
from fairmetric.train.config import config_from_dict, config_to_dict, load_config
from fairmetric.train.state import check_resumable

FEATURES, DIM, ATTR_DIM = 12, 8, 4


@pytest.fixture
def context() -> ObjectiveContext:
    ds = make_gaussian_groups(n_classes=8, samples_per_class=4, dim=4, seed=0)
    return ObjectiveContext(
        train_set=ds,
        embedding_dim=DIM,
        feature_dim=FEATURES,
        metric_loss=TripletMarginLoss(),
        log=lambda _m: None,
    )


def fixed_batch(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, labels and a 3:1 attribute whose value shifts the inputs (so it is learnable)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 8
    a = (torch.arange(n) % 4 == 0).long()
    x = torch.randn(n, 6, generator=gen) + torch.randn(8, 6, generator=gen)[y] + 1.5 * a[:, None]
    return x, y, a


def parade(**kwargs) -> ParadeTerm:
    options = {
        "feature_dim": FEATURES,
        "target_dim": DIM,
        "attribute_loss": TripletMarginLoss(margin=0.2),
        "attribute_dim": ATTR_DIM,
        "num_values": 2,
        **kwargs,
    }
    return ParadeTerm("colour", **options)


def one_step(terms_fn, *, lr: float = 1e-2, seed: int = 0) -> dict[str, nn.Module]:
    """One Adam step of a tiny backbone + target head on a fixed batch with the objective's terms
    (built after the model, so the model's initialisation does not depend on them)."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(6, FEATURES), nn.ReLU())
    head = nn.Linear(FEATURES, DIM)
    terms = terms_fn()
    objective = Objective(TripletMarginLoss(margin=0.2), terms=terms)
    model_params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.Adam([{"params": model_params, "lr": lr}, *objective.param_groups(lr)])
    x, y, a = fixed_batch()
    h = backbone(x)
    raw = head(h)
    batch = Batch(
        features=h,
        raw=raw,
        embeddings=F.normalize(raw, dim=1),
        labels=y,
        attributes=a[:, None],
        attribute_names=["colour"],
    )
    loss, _ = objective(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return {"backbone": backbone, "head": head, **{f"term{i}": t for i, t in enumerate(terms)}}


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ---------------------------------------------------------------- detach_features


def test_detached_head_at_rho_zero_trains_the_backbone_exactly_as_the_baseline():
    baseline = one_step(list)
    detached = one_step(lambda: [parade(rho=0.0, detach_features=True)])
    assert same_parameters(detached["backbone"], baseline["backbone"])
    assert same_parameters(detached["head"], baseline["head"])
    # without the detach the attribute loss trains the backbone (towards the attribute)
    joint = one_step(lambda: [parade(rho=0.0, detach_features=False)])
    assert not same_parameters(joint["backbone"], baseline["backbone"])
    assert same_parameters(joint["head"], baseline["head"])


@pytest.mark.parametrize("kind", ["rv", "cross_covariance", "adversarial"])
def test_detached_decorrelation_moves_the_target_embedding_only(kind):
    """With the detach, the attribute head is trained by its metric loss alone: ρ > 0 changes the
    backbone and target head, never the attribute head."""
    off = one_step(lambda: [parade(rho=0.0, decorrelation=kind, xi_hidden=16)])
    on = one_step(lambda: [parade(rho=5.0, decorrelation=kind, xi_hidden=16)])
    assert same_parameters(on["term0"].head, off["term0"].head)
    assert not same_parameters(on["backbone"], off["backbone"])
    assert not same_parameters(on["head"], off["head"])


# ---------------------------------------------------------------- balance


def test_balance_weights_the_decorrelation_by_group():
    x, y, a = fixed_batch()
    torch.manual_seed(0)
    e = F.normalize(torch.randn(32, DIM), dim=1)
    h = torch.randn(32, FEATURES)
    batch = Batch(h, e, e, y, a[:, None], ["colour"])
    balanced, plain = parade(rho=1.0, balance=True), parade(rho=1.0, balance=False)
    plain.load_state_dict(balanced.state_dict())
    e_s = balanced.head(h)
    w = torch.where(a == 1, 1 / (2 * 8), 1 / (2 * 24))
    dec = RVDecorrelation(DIM, ATTR_DIM)
    got = balanced(batch)["parade/colour/decorrelation"]
    torch.testing.assert_close(got, dec(e, e_s, w))
    torch.testing.assert_close(plain(batch)["parade/colour/decorrelation"], dec(e, e_s))
    assert float(got.detach()) != pytest.approx(float(dec(e, e_s).detach()), rel=1e-3)


@pytest.mark.parametrize("kind", ["rv", "cross_covariance", "adversarial"])
def test_balance_with_one_value_in_the_batch_falls_back_to_uniform_weights(kind):
    x, y, _ = fixed_batch()
    one = torch.zeros(32, 1, dtype=torch.long)
    torch.manual_seed(0)
    h, e = torch.randn(32, FEATURES), F.normalize(torch.randn(32, DIM), dim=1)
    balanced = parade(rho=1.0, decorrelation=kind, xi_hidden=16)
    plain = parade(rho=1.0, decorrelation=kind, xi_hidden=16, balance=False)
    plain.load_state_dict(balanced.state_dict())
    out = balanced(Batch(h, e, e, y, one, ["colour"]))
    assert all(bool(torch.isfinite(v)) for v in out.values())
    value = plain(Batch(h, e, e, y, one, ["colour"]))["parade/colour/decorrelation"]
    if kind == "cross_covariance":  # weighted: the covariance without the N - 1 correction
        value = value * (31 / 32) ** 2
    torch.testing.assert_close(out["parade/colour/decorrelation"], value)


# ---------------------------------------------------------------- ξ: learning rate, agreement


def agreement_run(lr: float, steps: int = 30) -> list[float]:
    """ξ (at the model's learning rate: xi_lr is None) on a fixed batch whose target embedding
    is a function of the attribute embedding's input; the logged agreement per step."""
    x, y, a = fixed_batch(64, seed=1)
    torch.manual_seed(0)
    h = torch.relu(nn.Linear(6, FEATURES)(x)).detach()
    e = F.normalize(h @ torch.randn(FEATURES, DIM), dim=1)  # learnable from h, so from e^s
    term = parade(rho=1.0, decorrelation="adversarial", xi_hidden=64)
    assert term.xi_lr is None
    objective = Objective(TripletMarginLoss(margin=0.2), terms=[term])
    groups = objective.param_groups(lr)
    xi = {id(p) for p in term.decorrelation.parameters()}
    assert [g["lr"] for g in groups if id(g["params"][0]) in xi] == [lr]  # follows the model
    opt = torch.optim.Adam(groups)
    values = []
    for _ in range(steps):
        loss, parts = objective(Batch(h, e, e, y, a[:, None], ["colour"]))
        values.append(parts["parade/colour/xi_agreement"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return values


def test_xi_agreement_rises_at_the_model_learning_rate_and_not_at_1e7():
    learning = agreement_run(1e-3)
    frozen = agreement_run(1e-7)
    assert learning[0] == pytest.approx(frozen[0])
    assert 0.5 / DIM < learning[0] < 2.0 / DIM  # about 1/D: ξ predicts nothing yet
    assert learning[-1] > learning[0] + 0.05
    assert abs(frozen[-1] - frozen[0]) < 1e-4


def test_xi_agreement_is_minus_d_times_the_adversarial_value():
    x, y, a = fixed_batch()
    torch.manual_seed(0)
    h, e = torch.randn(32, FEATURES), F.normalize(torch.randn(32, DIM), dim=1)
    term = parade(rho=1.0, decorrelation="adversarial", xi_hidden=16, balance=False)
    out = term(Batch(h, e, e, y, a[:, None], ["colour"]))
    assert isinstance(term.decorrelation, AdversarialDecorrelation)
    assert float(out["@parade/colour/xi_agreement"]) == pytest.approx(
        -DIM * float(out["parade/colour/decorrelation"].detach())
    )
    assert "@parade/colour/xi_agreement" not in parade(rho=1.0)(
        Batch(h, e, e, y, a[:, None], ["colour"])
    )


def test_state_log_reports_the_gradient_norm_that_reached_xi():
    x, y, a = fixed_batch()
    torch.manual_seed(0)
    h, e = torch.randn(32, FEATURES), F.normalize(torch.randn(32, DIM), dim=1)
    term = parade(rho=1.0, decorrelation="adversarial", xi_hidden=16)
    assert term.state_log() == {}  # no step yet
    out = term(Batch(h, e, e, y, a[:, None], ["colour"]))
    out["parade/colour/decorrelation"].backward()
    grads = [p.grad.flatten() for p in term.decorrelation.parameters()]
    logged = term.state_log()["parade/colour"]["xi_grad_norm"]
    assert logged == pytest.approx(float(torch.cat(grads).norm())) and logged > 0
    assert parade(rho=1.0).state_log() == {}  # closed forms have no ξ


# ---------------------------------------------------------------- config


def test_defaults_are_the_corrected_parade():
    cfg = ParadeConfig()
    assert (cfg.decorrelation, cfg.rho, cfg.xi_lr) == ("rv", 1.0, None)
    assert cfg.detach_features is True and cfg.balance is True
    shipped = load_config("colored_digits_parade").objective.parade
    assert shipped == ParadeConfig(attributes=["colour"])


def test_bench_method_spells_out_the_defaults():
    overrides = [o.format(attr="colour") for o in ParadeTerm.bench_methods["parade"]]
    cfg = load_config("colored_digits_baseline", overrides).objective.parade
    assert cfg == ParadeConfig(attributes=["colour"])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"rho": -1.0}, r"objective.parade.rho must be a finite number >= 0"),
        ({"weight": float("nan")}, r"objective.parade.weight must be a finite number"),
        (
            {"decorrelation": "hsic"},
            r"objective.parade.decorrelation must be rv .*, adversarial or cross_covariance, got 'hsic'",
        ),
        ({"xi_lr": 0.0}, r"objective.parade.xi_lr must be a positive number or null"),
        ({"xi_hidden": 0}, r"objective.parade.xi_hidden must be an integer >= 1"),
        ({"balance": "yes"}, r"objective.parade.balance must be true or false"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(context, change, match):
    cfg = dataclasses.replace(ParadeConfig(attributes=["group"]), **change)
    with pytest.raises(ValueError, match=match):
        ParadeTerm.from_config(cfg, context)


def test_terms_built_from_config_carry_the_options(context):
    (term,) = ParadeTerm.from_config(
        ParadeConfig(attributes=["group"], detach_features=False, balance=False), context
    )
    assert (term.detach_features, term.balance, term.num_values) == (False, False, 2)
    assert isinstance(term.decorrelation, RVDecorrelation) and term.xi_lr is None


def test_an_old_run_without_the_new_keys_resumes(tmp_path):
    """A run saved before detach_features / balance existed trained without them: resuming it
    under today's defaults is refused with the overrides that keep its behaviour, it resumes
    with them, and its objective state loads (no new parameters)."""
    old = config_to_dict(load_config("colored_digits_parade"))
    section = old["objective"]["parade"]
    for key in ("detach_features", "balance"):
        del section[key]
    section.update(decorrelation="cross_covariance", rho=10.0, xi_lr=1.0e-5)
    cfg = config_from_dict(old)
    assert cfg.objective.parade.detach_features and cfg.objective.parade.balance  # today's
    with pytest.raises(ValueError, match="balance=false objective.parade.detach_features=false"):
        check_resumable(cfg, {"config": old}, tmp_path)
    cfg.objective.parade.detach_features = cfg.objective.parade.balance = False
    check_resumable(cfg, {"config": old}, tmp_path)
    for kind, keys in (("rv", 2), ("cross_covariance", 2), ("adversarial", 6)):
        # the term as an old run trained it (attached head, unweighted statistics)
        state = parade(decorrelation=kind, xi_hidden=16, detach_features=False, balance=False)
        state = state.state_dict()
        assert len(state) == keys  # the head's weight and bias (+ ξ's two layers)
        parade(decorrelation=kind, xi_hidden=16).load_state_dict(state)  # strict: same keys

"""The baselines built on FlowQModule (FQL, flow BC) and the worked example of docs/extending.md.

(a) On the two-mode problem of ``two_mode.py``, FQL's evaluation policy picks the better mode
and flow BC keeps both; (b) every module trains inside a Trainer and its checkpoint reloads to
the same evaluation policy; (c) actor-side losses give no gradient to the critic and the critic
loss none to the actors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, IterableDataset

from rql_lightning.batch import Draws
from rql_lightning.config import compose_config
from rql_lightning.modules.bc import FlowBCModule
from rql_lightning.modules.fql import FQLModule
from rql_lightning.modules.rql import RQLModule
from tests.modules.two_mode import BAD, GOOD, two_mode_sampler

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = dict(obs_dim=1, action_dim=1, chunk_size=1, flow_steps=10, num_critics=2)


@pytest.fixture(scope="module")
def example_cls():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from my_flow_policy import AdvantageWeightedFlowBC

        yield AdvantageWeightedFlowBC
    finally:
        sys.path.remove(str(EXAMPLES))


def train_two_mode(cls, steps: int, seed: int = 0, **kwargs) -> torch.Tensor:
    """Train on the two-mode problem; return 2000 actions of the module's evaluation sampler."""
    torch.manual_seed(seed)
    m = cls(**TINY, actor_hidden_dims=[64, 64], critic_hidden_dims=[64, 64], actor_lr=1e-3, critic_lr=1e-3, **kwargs)
    opt = m.configure_optimizers()
    sampler, g = two_mode_sampler(), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        m.update(sampler.sample(128, g), m.draw(128, g), opt)
    noise = torch.randn(2000, 1, generator=torch.Generator().manual_seed(seed + 1))
    return m.sample_chunks(torch.zeros(2000, 1), noise).reshape(-1)


def near(x: torch.Tensor, mode: float) -> float:
    return ((x - mode).abs() < 0.3).float().mean().item()


@pytest.mark.slow
# ----- (a) learning ---------------------------------------------------------------------------
def test_fql_one_step_policy_prefers_the_better_mode():
    x = train_two_mode(FQLModule, 400, alpha=0.3)
    assert near(x, GOOD) > 0.8, near(x, GOOD)
    assert near(x, BAD) < 0.05, near(x, BAD)


def test_flow_bc_keeps_both_modes():
    x = train_two_mode(FlowBCModule, 800, ema=0.9)  # evaluation samples the EMA flow
    assert near(x, GOOD) > 0.25, near(x, GOOD)
    assert near(x, BAD) > 0.25, near(x, BAD)


def test_example_advantage_weighted_bc_prefers_the_better_mode(example_cls):
    x = train_two_mode(example_cls, 200, ema=0.9, beta=3.0, expectile=0.7)
    assert near(x, GOOD) > 0.6, near(x, GOOD)
    assert near(x, BAD) < 0.05, near(x, BAD)


# ----- (b) training in a Trainer, checkpoints ----------------------------------------------------
class TwoModeStream(IterableDataset):
    def __iter__(self):
        sampler, g = two_mode_sampler(64), torch.Generator().manual_seed(0)
        while True:
            yield sampler.sample(16, g)


def small(cls, **kwargs):
    return cls(**TINY, actor_hidden_dims=[16], critic_hidden_dims=[16], **kwargs)


@pytest.mark.parametrize("name", ["fql", "bc", "example"])
def test_trains_in_a_trainer_and_checkpoint_round_trips(name, example_cls, tmp_path):
    cls = {"fql": FQLModule, "bc": FlowBCModule, "example": example_cls}[name]
    torch.manual_seed(0)
    m = small(cls)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(m, DataLoader(TwoModeStream(), batch_size=None))
    assert trainer.global_step == 3
    after = m.state_dict()
    changed = {k.split(".")[0] for k in after if not torch.equal(before[k], after[k])}
    trained = {"fql": {"policy", "onestep", "critic"}, "bc": {"policy"}, "example": {"policy", "critic"}}[name]
    assert trained <= changed, changed
    if name == "bc":  # the critic is not trained
        assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("critic."))
    # Same checkpoint layout as every FlowQModule (plus FQL's one-step policy).
    assert {"policy", "ema_policy", "critic", "target_critic"} <= {k.split(".")[0] for k in after}

    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = cls.load_from_checkpoint(path)
    fresh = small(cls)
    fresh.load_state_dict(m.state_dict())
    obs, noise = torch.randn(32, 1), torch.randn(32, 1)
    expected = m.sample_chunks(obs, noise)
    assert expected.shape == (32, 1, 1)
    assert torch.equal(loaded.sample_chunks(obs, noise), expected)
    assert torch.equal(fresh.sample_chunks(obs, noise), expected)
    assert loaded.method_name == m.method_name


def test_method_name_is_the_class_default_unless_given(example_cls, tmp_path):
    defaults = {RQLModule: "rql", FQLModule: "fql", FlowBCModule: "bc", example_cls: "awfbc"}
    assert {cls: small(cls).method_name for cls in defaults} == defaults
    named = small(FQLModule, name="fql-normq")
    assert named.method_name == "fql-normq"
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(named)
    trainer.save_checkpoint(tmp_path / "named.ckpt")
    assert FQLModule.load_from_checkpoint(tmp_path / "named.ckpt").method_name == "fql-normq"


def test_fql_evaluates_the_online_one_step_policy():
    m = small(FQLModule)
    obs, noise = torch.randn(8, 1), torch.randn(8, 1)
    expected = m.onestep(torch.cat([obs, noise], dim=-1)).clamp(-1, 1).reshape(8, 1, 1)
    assert torch.equal(m.sample_chunks(obs, noise), expected)


def test_fql_optimizer_covers_every_trained_network():
    m = small(FQLModule)
    in_opt = {id(p) for group in m.configure_optimizers().param_groups for p in group["params"]}
    for net in (m.policy, m.onestep, m.critic):
        assert all(id(p) in in_opt for p in net.parameters())
    for net in (m.ema_policy, m.target_critic):
        assert not any(id(p) in in_opt for p in net.parameters())


@pytest.mark.parametrize("q_agg", ["mean", "min"])
def test_fql_options_run(q_agg):
    m = small(FQLModule, q_agg=q_agg, rho=0.5, normalize_q_loss=True, expectile=0.7)
    info = m.update(two_mode_sampler(64).sample(16), m.draw(16), m.configure_optimizers())
    assert all(torch.isfinite(v).all() for v in info.values())


# ----- (c) gradient separation ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fql", "bc", "example"])
def test_gradients_stay_separated(name, example_cls):
    cls = {"fql": FQLModule, "bc": FlowBCModule, "example": example_cls}[name]
    torch.manual_seed(0)
    m = small(cls)
    batch = two_mode_sampler(64).sample(16, torch.Generator().manual_seed(0))
    draws = m.draw(16, torch.Generator().manual_seed(1))
    critic_loss, _ = m.critic_loss(batch, draws)
    actor_loss, _ = m.actor_loss(batch, draws)
    actors = list(m.policy.parameters()) + (list(m.onestep.parameters()) if name == "fql" else [])
    critic = list(m.critic.parameters())
    assert all(g is None for g in torch.autograd.grad(actor_loss, critic, allow_unused=True, retain_graph=True))
    assert all(g is not None for g in torch.autograd.grad(actor_loss, actors, allow_unused=True))
    if critic_loss.requires_grad:
        assert all(g is None for g in torch.autograd.grad(critic_loss, actors, allow_unused=True, retain_graph=True))
        assert all(g is not None for g in torch.autograd.grad(critic_loss, critic, allow_unused=True))
    else:
        assert name == "bc"


def test_fql_draws_pin_the_update():
    torch.manual_seed(0)
    m = small(FQLModule)
    batch = two_mode_sampler(64).sample(16, torch.Generator().manual_seed(0))
    d1, d2 = (m.draw(16, torch.Generator().manual_seed(5)) for _ in range(2))
    assert isinstance(d1, Draws)
    assert torch.equal(m.actor_loss(batch, d1)[0], m.actor_loss(batch, d2)[0])
    assert torch.equal(m.critic_loss(batch, d1)[0], m.critic_loss(batch, d2)[0])


# ----- configs ------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["fql", "bc", "my_flow_policy"])
def test_model_configs_compose_and_instantiate(model, example_cls, tmp_path):
    overrides = [f"model={model}", f"paths.output_dir={tmp_path}"]
    overrides += ["model.actor_hidden_dims=[8]", "model.critic_hidden_dims=[8]"]
    if model == "my_flow_policy":  # what `rql-train --config-dir examples` does
        overrides.append(f"hydra.searchpath=[file://{EXAMPLES}]")
    cfg = compose_config(overrides)
    m = instantiate(cfg.model, obs_dim=3, action_dim=2)
    assert m.chunk_size == cfg.task.chunk_size
    if model == "fql":
        assert m.hparams.alpha == cfg.task.fql.alpha and m.hparams.q_agg == cfg.task.fql.q_agg
        assert m.hparams.num_critics == 2


def test_fql_min_target_equals_mean_minus_one_std_for_two_critics():
    torch.manual_seed(0)
    m = small(FQLModule)  # two critics
    batch = two_mode_sampler(64).sample(16, torch.Generator().manual_seed(0))
    draws = m.draw(16, torch.Generator().manual_seed(1))
    m.hparams.q_agg, m.hparams.rho = "min", 0.0
    loss_min = m.critic_loss(batch, draws)[0]
    m.hparams.q_agg, m.hparams.rho = "mean", 1.0
    torch.testing.assert_close(m.critic_loss(batch, draws)[0], loss_min)

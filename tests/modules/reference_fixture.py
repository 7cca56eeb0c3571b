"""Loads ``tests/fixtures/rql_reference_step_A.npz``: one RQL update computed by the authors' JAX code.

See ``tests/fixtures/README.md`` for where its numbers come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rql_lightning.batch import Draws
from rql_lightning.data.windows import windows_to_batch
from rql_lightning.modules.rql import RQLModule

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "rql_reference_step_A.npz"


def load_fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def policy_params(module, prefix: str):
    """(fixture key, parameter) pairs for an actor prefix: layer{i}.weight/bias."""
    net = module.velocity_net
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        yield f"{prefix}.layer{i}.weight", w
        yield f"{prefix}.layer{i}.bias", b


def critic_params(module, prefix: str):
    for i, (w, b) in enumerate(zip(module.weights, module.biases, strict=True)):
        yield f"{prefix}.layer{i}.weight", w
        yield f"{prefix}.layer{i}.bias", b
        if i < len(module.ln_scales):
            yield f"{prefix}.layer{i}.ln_scale", module.ln_scales[i]
            yield f"{prefix}.layer{i}.ln_bias", module.ln_biases[i]


def all_params(m: RQLModule, stage: str = ""):
    """Every (key, parameter) of the four networks; ``stage`` is '' or e.g. 'after.'."""
    yield from policy_params(m.policy, f"{stage}actor")
    yield from policy_params(m.ema_policy, f"{stage}target_actor")
    yield from critic_params(m.critic, f"{stage}value")
    yield from critic_params(m.target_critic, f"{stage}target_value")


def module_from_fixture(fx: dict[str, np.ndarray]) -> RQLModule:
    m = RQLModule(
        obs_dim=int(fx["obs_dim"]),
        action_dim=int(fx["act_dim"]),
        chunk_size=int(fx["h"]),
        flow_steps=int(fx["flow_steps"]),
        num_critics=int(fx["ensemble"]),
        actor_hidden_dims=[int(d) for d in fx["actor_hidden_dims"]],
        critic_hidden_dims=[int(d) for d in fx["value_hidden_dims"]],
        actor_lr=float(fx["lr"]),
        critic_lr=float(fx["lr"]),
        tau=float(fx["tau"]),
        ema=float(fx["ema"]),
        discount=float(fx["discount"]),
        alpha=float(fx["alpha"]),
        expectile=float(fx["expectile"]),
        rho=float(fx["rho"]),
    )
    with torch.no_grad():
        for key, p in all_params(m):
            p.copy_(t(fx[key]))
    return m


def batch_from_fixture(fx: dict[str, np.ndarray]):
    """The fixture's batch is time-major ``(h+1, B, ...)``; ours is batch-first."""

    def bf(key: str) -> torch.Tensor:
        return t(fx[key]).transpose(0, 1).contiguous()

    return windows_to_batch(
        bf("batch.observations"),
        bf("batch.actions"),
        bf("batch.rewards"),
        bf("batch.terminals"),
        bf("batch.masks"),
    )


def draws_from_fixture(fx: dict[str, np.ndarray]) -> Draws:
    """The reference's draws; ``policy_noise`` (which RQL does not read) is NaN, so any use would show."""
    next_noise = t(fx["draw.next_noise"])
    return Draws(
        next_noise=next_noise,
        policy_noise=torch.full_like(next_noise, float("nan")),
        depth=t(fx["draw.d"]),
        bc_noise=t(fx["draw.x0"]),
        bc_time=t(fx["draw.t"]),
    )

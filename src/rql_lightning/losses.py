"""RQL's losses as plain functions of (networks, batch, random draws).

Every random number a step uses lives in :class:`RQLDraws`, so a test can pin them; the
functions themselves are deterministic. Equation numbers refer to ``RQL_SPEC.md``'s
"One training step".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rql_lightning.batch import ChunkBatch
from rql_lightning.flow import FlowPolicy
from rql_lightning.nets import EnsembleMLP


@dataclass
class RQLDraws:
    """The random draws of one update, batch-first.

    next_noise (B, D): x0' for the bootstrap state.  depth (B,): reversal depths d.
    bc_noise (B, D): x0 of the flow-matching path.   bc_time (B, 1): its flow time t.
    """

    next_noise: torch.Tensor
    depth: torch.Tensor
    bc_noise: torch.Tensor
    bc_time: torch.Tensor

    @classmethod
    def sample(
        cls,
        batch_size: int,
        chunk_dim: int,
        flow_steps: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> RQLDraws:
        """Half the depths ``U(0, 1)``, the other half on the Euler grid ``k / F``, ``k ~ U{0..F}``."""
        kw = {"device": device, "generator": generator}
        n_uniform = batch_size // 2
        depth = torch.cat(
            [
                torch.rand(n_uniform, **kw),
                torch.randint(flow_steps + 1, (batch_size - n_uniform,), **kw).float() / flow_steps,
            ]
        )
        return cls(
            next_noise=torch.randn(batch_size, chunk_dim, **kw),
            depth=depth,
            bc_noise=torch.randn(batch_size, chunk_dim, **kw),
            bc_time=torch.rand(batch_size, 1, **kw),
        )


def expectile_weight(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``|kappa - 1(diff < 0)|``: kappa above the target, 1 - kappa below it."""
    return torch.where(diff >= 0, expectile, 1.0 - expectile)


def n_step_return(rewards: torch.Tensor, discount: float) -> torch.Tensor:
    """``sum_{i<h} gamma^i r_i`` for ``rewards (B, h)`` (already zeroed past episode ends)."""
    powers = discount ** torch.arange(rewards.shape[1], device=rewards.device, dtype=rewards.dtype)
    return rewards @ powers


def pessimistic_value(qs: torch.Tensor, rho: float) -> torch.Tensor:
    """``mean_j Q_j - rho * std_j Q_j`` over the ensemble axis of ``qs (K, B)`` (population std)."""
    return qs.mean(dim=0) - rho * qs.std(dim=0, correction=0)


def td_target(
    target_critic: EnsembleMLP,
    batch: ChunkBatch,
    next_noise: torch.Tensor,
    discount: float,
    rho: float,
    chunk_size: int,
) -> torch.Tensor:
    """Step 2: ``y = R_h + gamma^h m (mean - rho std) Q_bar(s', x0', 0)``. Returns ``(B,)``."""
    next_obs = batch.next_observations
    f0 = torch.zeros_like(next_obs[:, :1])
    next_qs = target_critic(torch.cat([next_obs, next_noise, f0], dim=-1)).squeeze(-1)  # (K, B)
    bootstrap = pessimistic_value(next_qs, rho) * batch.bootstrap_mask
    return n_step_return(batch.rewards, discount) + discount**chunk_size * bootstrap


def critic_loss(
    critic: EnsembleMLP,
    target_critic: EnsembleMLP,
    policy: FlowPolicy,
    batch: ChunkBatch,
    draws: RQLDraws,
    discount: float,
    expectile: float,
    rho: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Steps 1-3: reverse the flow (no gradient), regress every member on the shared target."""
    with torch.no_grad():
        x_f, f = policy.reverse(batch.observations, batch.action_chunks, draws.depth)
        y = td_target(target_critic, batch, draws.next_noise, discount, rho, policy.chunk_size)
    q = critic(torch.cat([batch.observations, x_f, f], dim=-1)).squeeze(-1)  # (K, B)
    diff = y - q
    loss = (batch.valid * expectile_weight(diff, expectile) * diff.square()).mean()
    return loss, {"q": q, "td_target": y, "x_f": x_f, "f": f}


def actor_loss(
    policy: FlowPolicy,
    critic: EnsembleMLP,
    batch: ChunkBatch,
    draws: RQLDraws,
    alpha: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Step 4: flow-matching BC plus one Euler step of Q improvement (critic weights held fixed)."""
    obs, chunk, t, x0 = batch.observations, batch.action_chunks, draws.bc_time, draws.bc_noise
    x_t = (1.0 - t) * x0 + t * chunk
    pred = policy.velocity(obs, x_t, t)
    bc = (batch.action_mask * (pred - (chunk - x0)).square()).mean()
    dt = 1.0 / policy.flow_steps
    x_next = x_t + pred * torch.clamp(1.0 - t, max=dt)
    f_next = torch.clamp(t + dt, max=1.0)
    q_pe = critic(torch.cat([obs, x_next, f_next], dim=-1), detach_params=True).squeeze(-1).mean(dim=0)
    q_term = -(q_pe * batch.valid).mean()
    return q_term + alpha * bc, {"bc_loss": bc, "q_loss": q_term, "q_pe": q_pe, "pred": pred}

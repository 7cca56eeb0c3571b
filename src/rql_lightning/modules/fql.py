"""Flow Q-Learning (Park, Li, Levine 2025) on action chunks: docs/algorithm.md (F1)-(F3), matched to
``seohongpark/fql`` ``agents/fql.py`` and its chunked form ``acfql.py``. It evaluates its online one-step policy
(the base class's EMA flow is kept but unused)."""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.modules.base import FlowQModule
from rql_lightning.nets import MLP


class FQLModule(FlowQModule):
    """FQL: BC flow + one-step policy distilled from it and pushed up the critic."""

    default_name = "fql"

    def __init__(
        self,
        *args,
        alpha: float = 300.0,  # conf: task.fql.alpha, per task (300 is cube and scene)
        normalize_q_loss: bool = False,
        q_agg: str = "mean",
        rho: float = 0.0,
        expectile: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()
        if q_agg not in ("mean", "min"):
            raise ValueError(f"q_agg must be 'mean' or 'min', got {q_agg!r}")
        d = self.policy.chunk_dim
        self.onestep = MLP(self.policy.obs_dim + d, list(self.hparams.actor_hidden_dims), d)

    def onestep_chunk(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The one-step policy's unclipped chunk ``(B, D)``."""
        return self.onestep(torch.cat([obs, noise], dim=-1))

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        with torch.no_grad():
            next_obs = batch.next_observations
            next_x = self.onestep_chunk(next_obs, draws.next_noise).clamp(-1.0, 1.0)
            next_qs = losses.critic_at(self.target_critic, next_obs, next_x, 1.0)
            next_q = next_qs.min(dim=0).values if hp.q_agg == "min" else losses.pessimistic_value(next_qs, hp.rho)
            y = losses.td_target(batch, next_q, hp.discount)
        q = losses.critic_at(self.critic, batch.observations, batch.action_chunks, 1.0)  # (K, B)
        loss = 2.0 * losses.expectile_loss(y - q, hp.expectile, batch.valid)
        return loss, {"q": q.detach(), "td_target_mean": y.mean()}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        obs = batch.observations
        bc = losses.flow_matching_loss(self.policy, batch, draws).loss
        # Distillation of the BC flow into the one-step policy (same noise, no gradient to the flow).
        with torch.no_grad():
            target = self.policy.sample(obs, draws.policy_noise)
        x = self.onestep_chunk(obs, draws.policy_noise)
        distill = (x - target).square().mean()
        # Q term, critic weights fixed.
        q = losses.critic_at(self.critic, obs, x.clamp(-1.0, 1.0), 1.0, detach_params=True).mean(dim=0)
        q_term = -q.mean()
        if hp.normalize_q_loss:
            q_term = q_term / q.abs().mean().detach().clamp_min(1e-6)
        loss = bc + hp.alpha * distill + q_term
        return loss, {"bc_loss": bc.detach(), "distill_loss": distill.detach(), "q_term": q_term.detach()}

    @torch.no_grad()
    def sample_chunks(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The online one-step policy, clipped to [-1, 1]: ``(N, h, A)``."""
        return self.policy.split_chunk(self.onestep_chunk(obs, noise).clamp(-1.0, 1.0))

    def optimizer_groups(self) -> list[dict]:
        return [*super().optimizer_groups(), {"params": list(self.onestep.parameters()), "lr": self.hparams.actor_lr}]

"""Reversal Q-Learning: the two losses, as the paper writes them (``RQL_SPEC.md``)."""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.modules.base import FlowQModule


class RQLModule(FlowQModule):
    """Critic: expectile regression on the shared h-step target at flow-reversed states.
    Actor: flow-matching BC (weight ``alpha``) plus one Euler step of Q improvement."""

    default_name = "rql"

    def __init__(self, *args, alpha: float = 1.0, expectile: float = 0.7, rho: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        loss, info = losses.critic_loss(
            self.critic, self.target_critic, self.policy, batch, draws, hp.discount, hp.expectile, hp.rho
        )
        return loss, {"q": info["q"].detach()}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        loss, info = losses.actor_loss(self.policy, self.critic, batch, draws, self.hparams.alpha)
        return loss, {"bc_loss": info["bc_loss"].detach(), "q_term": info["q_term"].detach()}

"""Reversal Q-Learning: the two losses, as ``docs/algorithm.md`` (A2)-(A7) writes them."""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.errors import UserError
from rql_lightning.modules.base import FlowQModule


class RQLModule(FlowQModule):
    """``virtual_states`` picks the critic's states (:func:`losses.virtual_states`): ``reversal`` is RQL;
    ``interpolation`` and ``forward`` are controls for its premise, docs/algorithm.md (C1), (C2)."""

    default_name = "rql"

    def __init__(
        self,
        *args,
        alpha: float = 1.0,
        expectile: float = 0.7,
        rho: float = 0.5,
        virtual_states: str = "reversal",
        **kwargs,
    ) -> None:
        if virtual_states not in losses.VIRTUAL_STATES:
            raise UserError(
                f"model.virtual_states={virtual_states} is not a mode; use one of {', '.join(losses.VIRTUAL_STATES)}"
            )
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        nets = (self.critic, self.target_critic, self.policy)
        loss, info = losses.critic_loss(*nets, batch, draws, hp.discount, hp.expectile, hp.rho, hp.virtual_states)
        return loss, {"q": info["q"].detach()}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        loss, info = losses.actor_loss(self.policy, self.critic, batch, draws, self.hparams.alpha)
        return loss, {"bc_loss": info["bc_loss"].detach(), "q_term": info["q_term"].detach()}

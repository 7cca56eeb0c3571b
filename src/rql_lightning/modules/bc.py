"""Flow behaviour cloning: docs/algorithm.md (A5) alone, evaluated as the base class (the EMA flow).

The critic is not trained (a constant zero loss, out of the optimizer) but exists, so checkpoints have every
:class:`FlowQModule`'s keys; ``conf/model/bc.yaml`` makes it tiny, and its Polyak update is a no-op up to rounding.
"""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.modules.base import FlowQModule


class FlowBCModule(FlowQModule):
    """Flow-matching BC on dataset chunks, masked past episode ends (:func:`losses.flow_matching_loss`)."""

    default_name = "bc"

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        return batch.observations.new_zeros(()), {}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        bc = losses.flow_matching_loss(self.policy, batch, draws).loss
        return bc, {"bc_loss": bc.detach()}

    def optimizer_groups(self) -> list[dict]:
        return super().optimizer_groups()[:1]  # the actor's: the critic is not trained

"""``diag/*``: RQL's premise diagnostics (:mod:`rql_lightning.premise_measures`) and the validation losses, on one
FIXED ``-val`` batch with fixed depths, slicing directions and loss draws, so the curves move only because the
networks do. Logged from global rank 0 and published in ``trainer.callback_metrics``; a batched module's replicas each
as their single run would be, as ``<replica key>/diag/*``.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device

from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.data.windows import sampler_from_arrays
from rql_lightning.errors import UserError
from rql_lightning.evaluator import replicas_of, report
from rql_lightning.premise_measures import premise_diagnostics


class DiagnosticsError(UserError):
    """Diagnostics were asked for on data without a held-out split."""


class DiagnosticsCallback(L.Callback):
    """``diag/*`` every ``diag_every`` batches on a fixed batch of ``batch_size`` ``-val`` windows (seed ``seed``)."""

    def __init__(self, diag_every: int = 0, batch_size: int = 256, num_directions: int = 64, seed: int = 0) -> None:
        if diag_every < 0:
            raise DiagnosticsError(f"callbacks.diagnostics.diag_every={diag_every} must be >= 0; 0 turns it off")
        self.diag_every = diag_every
        self.batch_size = batch_size
        self.num_directions = num_directions
        self.seed = seed
        self.fixed: tuple[list[ChunkBatch], torch.Tensor, torch.Tensor, Draws] | None = None
        self.latest: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.diag_every > 0 and trainer.is_global_zero:
            self.fixed = self.draw_fixed(trainer.datamodule, pl_module)

    def draw_fixed(self, datamodule, pl_module) -> tuple[list[ChunkBatch], torch.Tensor, torch.Tensor, Draws]:
        """The held-out batch (one per run: its task's rewards), depths ``(B,)``, unit directions ``(P, D)`` and loss
        draws, drawn once on the CPU."""
        val = getattr(datamodule, "val_arrays", None)
        if val is None:
            raise DiagnosticsError(
                f"callbacks.diagnostics.diag_every={self.diag_every} needs the dataset's -val split, which "
                f"{type(datamodule).__name__} did not load; use OGBench data with data.load_val=true, or "
                "callbacks.diagnostics.diag_every=0"
            )
        g = torch.Generator().manual_seed(self.seed)
        runs = _runs(pl_module)
        policy = runs[0][1].policy  # one run's shapes (chunk size, flow steps) are every run's
        sampler = sampler_from_arrays(val, policy.chunk_size, torch.device("cpu"))
        idx = sampler.sample_indices(self.batch_size, g)  # the same windows for every run, with its task's rewards
        columns = [None if t is None else list(datamodule.task_ids).index(t) for *_, t in runs]  # (-val columns)
        batches = [sampler.gather(idx, None if c is None else torch.full((len(idx),), c)) for c in columns]
        depth = torch.rand(self.batch_size, generator=g)
        directions = torch.randn(self.num_directions, batches[0].action_chunks.shape[1], generator=g)
        directions = directions / directions.norm(dim=1, keepdim=True)
        draws = Draws.sample(self.batch_size, policy.chunk_dim, policy.flow_steps, "cpu", g)  # the update's draws
        return move_data_to_device((batches, depth, directions, draws), pl_module.device)  # as Lightning moves batches

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        batches = int(trainer.fit_loop.total_batch_idx) + 1  # integer arithmetic only, unless a diagnostics batch
        if self.diag_every > 0 and batches % self.diag_every == 0 and trainer.is_global_zero:
            self.latest = self.measure(pl_module)
            report(trainer, self.latest, step=batches)

    @torch.no_grad()
    def measure(self, pl_module) -> dict[str, float]:
        """All ``diag/*`` numbers (``seed<s>/diag/*`` per seed) at the module's current weights, one host sync."""
        batches, depth, directions, draws = self.fixed
        values: dict[str, torch.Tensor] = {}
        for (prefix, run, _), batch in zip(_runs(pl_module), batches, strict=True):
            one = premise_diagnostics(run.policy, run.critic, batch, depth, directions)
            critic_loss, actor_loss, _ = run.compute_losses(batch, draws)
            one.update(val_critic_loss=critic_loss, val_actor_loss=actor_loss)
            values.update({f"{prefix}diag/{k}": v for k, v in one.items()})
        numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
        return dict(zip(values, numbers, strict=True))


def _runs(pl_module) -> list[tuple[str, L.LightningModule, int | None]]:
    """``(tag prefix, single-run module, task or None)`` per run the module holds (one, or one per replica)."""
    replicas = replicas_of(pl_module)
    if replicas is None:
        return [("", pl_module, None)]
    return [(f"{key}/", pl_module.replica(i), task) for i, (key, task, _) in enumerate(replicas)]

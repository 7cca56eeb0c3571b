"""FlowQModule: the Lightning plumbing every flow-policy Q-learning method shares.

It owns the networks (flow actor, critic ensemble, their targets), the manual optimization
step, the target updates, evaluation-time sampling and logging. A method subclasses it and
fills in two hooks, :meth:`critic_loss` and :meth:`actor_loss`, both ``(batch, draws) -> (loss,
info)`` on a :class:`~rql_lightning.batch.ChunkBatch` and the update's
:class:`~rql_lightning.batch.Draws` (and, if it evaluates another network,
:meth:`sample_chunks`); see ``rql.py``.

Update order (the reference's): both losses at the pre-step weights, one backward pass,
targets moved toward the pre-step weights, then one Adam step. The actor and critic share one
``Adam`` with a parameter group each; since their gradients come from disjoint losses this is
the same as two optimizers, and Lightning's ``global_step`` counts training steps.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch

from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.checkpoint_fit import MODULE_CLASS_KEY, fit_problem
from rql_lightning.errors import NonFiniteError, UserError
from rql_lightning.flow import FlowPolicy
from rql_lightning.nets import EnsembleMLP
from rql_lightning.seeding import DRAW_STREAM, seeded_generator


def global_batch_split(trainer: L.Trainer | None) -> int:
    """Over how many ranks one batch is split: the world size under ``data.global_batch_size``, else 1."""
    if trainer is None or trainer.world_size <= 1:
        return 1
    return trainer.world_size if getattr(trainer.datamodule, "global_batch_size", None) else 1


class FlowQModule(L.LightningModule):
    """Base class: flow actor + critic ensemble, targets, one manual update per batch.

    ``name`` is the method's short name in results tables (saved with the hyperparameters);
    without it, :attr:`method_name` is the class's :attr:`default_name`.
    """

    default_name: str = "flowq"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        chunk_size: int = 5,
        flow_steps: int = 10,
        num_critics: int = 10,
        actor_hidden_dims: Sequence[int] = (512, 512, 512, 512),
        critic_hidden_dims: Sequence[int] = (512, 512, 512, 512),
        critic_layer_norm: bool = True,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        tau: float = 0.005,
        ema: float = 0.999,
        discount: float = 0.99,
        log_every: int = 100,
        compile: bool = False,
        compile_mode: str | None = None,
        seed: int = 0,
        check_finite_every: int = 1,
        skip_nonfinite: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.chunk_size = chunk_size
        self.policy = FlowPolicy(obs_dim, action_dim, chunk_size, list(actor_hidden_dims), flow_steps)
        self.ema_policy = copy.deepcopy(self.policy).requires_grad_(False)
        chunk_dim = chunk_size * action_dim
        self.critic = EnsembleMLP(
            num_critics, obs_dim + chunk_dim + 1, list(critic_hidden_dims), 1, layer_norm=critic_layer_norm
        )
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("skipped_updates", torch.zeros((), dtype=torch.long))

    @property
    def method_name(self) -> str:
        """The short name results tables use: ``name`` if given, else the class's ``default_name``."""
        return self.hparams.get("name") or self.default_name

    # ----- hooks a method fills in -------------------------------------------------------
    def draw(self, batch_size: int, generator: torch.Generator | None = None) -> Draws:
        """All random numbers of one update, on the module's device."""
        return Draws.sample(batch_size, self.policy.chunk_dim, self.policy.flow_steps, self.device, generator)

    def step_generator(self, step: int, rank: int | None = None, seed: int | None = None) -> torch.Generator:
        """The generator for training step ``step``'s draws: a function of (seed, rank, step) only.

        So a resumed run draws exactly what the uninterrupted one would have, and DDP ranks
        draw independently. ``seed``: another run's seed (a seed-batched run draws each seed's).
        """
        g = getattr(self, "_step_generator", None)
        if g is None or g.device != self.device:
            g = self._step_generator = torch.Generator(device=self.device)
        rank = self.global_rank if rank is None else rank
        seed = self.hparams.seed if seed is None else seed
        return seeded_generator(seed, rank, step, DRAW_STREAM, generator=g)

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError("a FlowQModule subclass defines critic_loss(batch, draws)")

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError("a FlowQModule subclass defines actor_loss(batch, draws)")

    @torch.no_grad()
    def sample_chunks(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Evaluation policy: the EMA actor's flow from ``noise (N, D)``; returns ``(N, h, A)``."""
        return self.ema_policy.split_chunk(self.ema_policy.sample(obs, noise))

    # ----- the shared update --------------------------------------------------------------
    def compute_losses(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Both losses at the current weights: ``(critic_loss, actor_loss, info)``."""
        critic_term, critic_info = self.critic_loss(batch, draws)
        actor_term, actor_info = self.actor_loss(batch, draws)
        return critic_term, actor_term, {**critic_info, **actor_info}

    def update(self, batch: ChunkBatch, draws: Draws, optimizer: torch.optim.Optimizer) -> dict:
        """One full update; returns the loss terms (tensors, not synced to host)."""
        critic_term, actor_term, info = self._losses_fn()(batch, draws)
        optimizer.zero_grad(set_to_none=True)
        self._backward(critic_term + actor_term)
        every = self.hparams.check_finite_every
        checked = every > 0 and self.global_step % every == 0
        if not checked or self._finite_or_skip(critic_term, actor_term, optimizer):
            self._targets_fn()()
            optimizer.step()
        return {"critic_loss": critic_term.detach(), "actor_loss": actor_term.detach(), **info}

    def _targets_fn(self):
        """``update_targets``, compiled into one fused kernel per network when ``compile=True``.

        (Adam needs no compiling: it is already a single fused kernel.)"""
        if not self.hparams.compile:
            return self.update_targets
        if getattr(self, "_compiled_targets", None) is None:
            self._compiled_targets = torch.compile(self.update_targets, dynamic=False)
        return self._compiled_targets

    def _finite_or_skip(self, critic_term: torch.Tensor, actor_term: torch.Tensor, optimizer) -> bool:
        """NaN/inf guard, every ``check_finite_every`` steps (it costs one host sync).

        Raises :class:`NonFiniteError` naming the step and the term, or, with ``skip_nonfinite``,
        drops the update (weights, targets and Adam state untouched; the step still counts so the
        next batch is a new one) and counts it."""
        terms = {"critic_loss": critic_term.detach(), "actor_loss": actor_term.detach()}
        for name, net in (("actor gradient", self.policy), ("critic gradient", self.critic)):
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            if grads:
                terms[name] = torch.stack(torch._foreach_norm(grads)).sum()
        finite = torch.isfinite(torch.stack(list(terms.values())))
        if bool(finite.all()):
            return True
        bad = [name for name, ok in zip(terms, finite.tolist(), strict=True) if not ok]
        if not self.hparams.skip_nonfinite:
            raise NonFiniteError(
                f"step {self.global_step}: non-finite {', '.join(bad)}. Training stopped before this update; the "
                "last checkpoint holds the last good weights. To skip such batches instead: model.skip_nonfinite=true"
            )
        self.skipped_updates += 1
        optimizer.zero_grad(set_to_none=True)  # Adam leaves parameters without gradients untouched
        optimizer.step()
        return False

    def _losses_fn(self):
        """``compute_losses``, through ``torch.compile`` (forward and backward graphs) when ``compile=True``."""
        if not self.hparams.compile:
            return self.compute_losses
        if getattr(self, "_compiled_losses", None) is None:
            # mode="reduce-overhead" adds CUDA graphs on GPU; None is inductor's default.
            self._compiled_losses = torch.compile(self.compute_losses, dynamic=False, mode=self.hparams.compile_mode)
        return self._compiled_losses

    @torch.no_grad()
    def update_targets(self) -> None:
        """Polyak critic target and EMA actor, from the current (pre-step) weights."""
        tau, keep = self.hparams.tau, 1.0 - self.hparams.ema
        for target, online, rate in (
            (self.target_critic, self.critic, tau),
            (self.ema_policy, self.policy, keep),
        ):
            t_params, o_params = list(target.parameters()), list(online.parameters())
            torch._foreach_mul_(t_params, 1.0 - rate)
            torch._foreach_add_(t_params, o_params, alpha=rate)

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:  # used outside a Trainer (tests, notebooks)
            loss.backward()

    def step_draws(
        self,
        batch_size: int,
        step: int | None = None,
        seed: int | None = None,
        rank: int | None = None,
        split_over: int | None = None,
    ) -> Draws:
        """Step ``step``'s draws (default: this run's, at its step, rank and seed). Under ``data.global_batch_size``
        (one batch split across ``split_over`` ranks) they are the whole global batch's draws, seeded as rank 0,
        and this rank keeps its rows: so N ranks together draw exactly what one process with the full batch
        draws, as the windows do."""
        step = self.global_step if step is None else step
        rank = self.global_rank if rank is None else rank
        split_over = global_batch_split(self._trainer) if split_over is None else split_over
        if split_over > 1:
            full = self.draw(batch_size * split_over, self.step_generator(step, rank=0, seed=seed))
            return full.rows(slice(rank * batch_size, (rank + 1) * batch_size))
        return self.draw(batch_size, self.step_generator(step, rank=rank, seed=seed))

    def training_step(self, batch: ChunkBatch, batch_idx: int) -> None:
        draws = self.step_draws(len(batch))
        info = self.update(batch, draws, self.optimizers())
        if batch_idx % self.hparams.log_every == 0:
            self.log_dict(self.train_metrics(info), on_step=True, on_epoch=False)

    def train_metrics(self, info: dict) -> dict[str, torch.Tensor]:
        """Scalars for TensorBoard; called every ``log_every`` steps only."""
        metrics = {f"train/{k}": v for k, v in info.items() if v.dim() == 0}
        if self.hparams.skip_nonfinite:
            metrics["train/skipped_updates"] = self.skipped_updates.float()
        if "q" in info:
            q = info["q"].detach()
            metrics.update({"train/q_mean": q.mean(), "train/q_max": q.max(), "train/q_min": q.min()})
        return metrics

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [
            {"params": list(self.policy.parameters()), "lr": self.hparams.actor_lr},
            {"params": list(self.critic.parameters()), "lr": self.hparams.critic_lr},
        ]
        # Fused Adam: one kernel for all parameters (same arithmetic as the reference's optax.adam).
        return torch.optim.Adam(groups, eps=1e-8, fused=True)

    # ----- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the class, so a resume into another method is named as such (``checkpoint_fit``)."""
        checkpoint[MODULE_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of another class or other shapes before Lightning loads a weight (whatever
        path it resolved: ``ckpt_path=last`` included), in one line instead of a wall of size mismatches."""
        problem = fit_problem(checkpoint, dict(self.hparams), f"{type(self).__module__}.{type(self).__qualname__}")
        if problem:
            raise UserError(f"ckpt_path={self._trainer.ckpt_path if self._trainer else '?'} {problem}")

    # ----- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def act_seeded(self, obs: np.ndarray, seeds: list[int], generator: torch.Generator) -> np.ndarray:
        """Like :meth:`act` for a batch whose row ``i`` draws its noise from ``seeds[i]``: the same
        numbers as ``act(obs[i:i+1])`` after ``generator.manual_seed(seeds[i])``, in one batched pass
        (row by row through ``act`` when a subclass overrides it)."""
        if type(self).act is not FlowQModule.act:
            outs = []
            for i, s in enumerate(seeds):
                generator.manual_seed(s)
                outs.append(np.asarray(self.act(obs[i : i + 1], generator)))
            return np.concatenate(outs)
        rows = []
        for s in seeds:
            generator.manual_seed(s)
            rows.append(torch.randn(1, self.policy.chunk_dim, generator=generator, device=generator.device))
        obs_t = torch.as_tensor(obs, dtype=torch.float32).to(self.device)
        return self.sample_chunks(obs_t, torch.cat(rows).to(self.device)).cpu().numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Evaluation callback contract: ``obs (N, O)`` -> action chunks ``(N, h, A)`` in numpy."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32).to(self.device)
        # drawn on the generator's device (the callback keeps it on the module's), then moved
        noise = torch.randn(obs_t.shape[0], self.policy.chunk_dim, generator=generator, device=generator.device)
        noise = noise.to(self.device)
        return self.sample_chunks(obs_t, noise).cpu().numpy()

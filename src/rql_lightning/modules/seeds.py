"""Seeds as a batch axis: ``S`` independent replicas of one FlowQModule, advanced by one fused update.

Every parameter and buffer of the replica (actor, EMA actor, critic ensemble, target critic, a
method's extra networks) carries a leading seed axis ``(S, ...)``. A method still writes its losses
for one seed; :class:`SeedBatch` runs them for all seeds at once with ``torch.func.vmap`` over
``torch.func.functional_call`` (batched matmuls, no Python loop over seeds), sums the per-seed
losses (never averages: each seed's gradients, and so its Adam moments, stay its own), and takes one
optimizer step and one target update over the stacked tensors. Adam and the target updates are
elementwise, so they act on each seed's slice as a single run would.

Seed ``s`` is the run ``seed=s`` would be: its initial weights come from ``torch.manual_seed(s)``
(what ``seed_everything(s)`` sets before the model is built), its draws of step ``k`` on rank ``r``
from (s, r, k), its windows from the stream's (s, r, k) (``data/windows.py``). Drawing them is ``S``
small generator calls per step (a generator cannot be vectorised); the math is one graph.
Exporting a seed as an ordinary checkpoint is :mod:`rql_lightning.modules.seed_export`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from rql_lightning.batch import ChunkBatch, Draws, stack_records
from rql_lightning.checkpoint_fit import MODULE_CLASS_KEY, fit_problem
from rql_lightning.errors import NonFiniteError, UserError
from rql_lightning.modules.base import FlowQModule, global_batch_split

PREFIX = "replica."  # state_dict keys are the single-seed module's keys under this prefix, with a seed axis
REPLICA_HPARAMS = "replica_hyper_parameters"  # checkpoint key: the single-seed module's hparams (seed left out)


def import_class(path: str) -> type:
    module_name, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def build_replica(replica: str, replica_kwargs: dict[str, Any], seed: int) -> FlowQModule:
    """The single-seed module a run with ``seed`` builds: initialised right after ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return import_class(replica)(**{**replica_kwargs, "seed": int(seed)})


def _stack_into(target: nn.Module, replicas: Sequence[nn.Module]) -> None:
    """Replace every parameter and buffer of ``target`` by the stack of the replicas' ``(S, ...)``."""
    for name, mod in target.named_modules():
        others = [r.get_submodule(name) for r in replicas]
        for key, p in list(mod._parameters.items()):
            if p is not None:
                stacked = torch.stack([o._parameters[key].detach() for o in others])
                mod._parameters[key] = nn.Parameter(stacked, requires_grad=p.requires_grad)
        for key, b in list(mod._buffers.items()):
            if b is not None:
                mod._buffers[key] = torch.stack([o._buffers[key] for o in others])


class _Call(nn.Module):
    """``forward`` = one method of the wrapped module, so ``functional_call`` can reach it."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args: Any) -> Any:
        return getattr(self.module, self.method)(*args)


class SeedBatch(L.LightningModule):
    """``S`` replicas of ``replica`` (a FlowQModule class path) built with ``replica_kwargs``, one per seed.

    ``self.replica`` is the method's own module with every tensor stacked ``(S, ...)``; it is never
    called directly, only per seed through :meth:`per_seed`.
    """

    def __init__(self, replica: str, replica_kwargs: dict[str, Any], seeds: Sequence[int]) -> None:
        super().__init__()
        if isinstance(seeds, str) or not isinstance(seeds, Sequence):
            raise UserError(f"seeds={seeds} must be a list of seeds; e.g. seeds=[0,1,2,3], or seeds=null for one")
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise UserError(f"seeds={seeds} must be a non-empty list of distinct seeds; e.g. seeds=[0,1,2,3]")
        self.save_hyperparameters({"replica": replica, "replica_kwargs": dict(replica_kwargs), "seeds": seeds})
        self.automatic_optimization = False
        self.seeds = seeds
        replicas = [build_replica(replica, replica_kwargs, s) for s in seeds]
        self.replica = replicas[0]
        _stack_into(self.replica, replicas)
        self.replica.hparams.seed = None  # one module, S seeds: only self.seeds names them
        self._calls = {m: _Call(self.replica, m) for m in ("compute_losses", "sample_chunks")}
        self._compiled: dict[str, Any] = {}

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    @property
    def method_name(self) -> str:
        return self.replica.method_name

    @property
    def chunk_size(self) -> int:
        return self.replica.chunk_size

    @property
    def model_class(self) -> str:
        """The method's class path (what each seed's single run builds), for run records."""
        return self.hparams.replica

    # ----- one seed's function, for all seeds ---------------------------------------------------
    def per_seed(self, method: str, *records: Any) -> Any:
        """``vmap`` of ``replica.<method>(*records)`` over the seed axis of the weights and of every record.

        Records (:class:`ChunkBatch`, :class:`Draws`, tensors) have a leading ``(S, ...)`` axis; so do the
        results. Randomness inside is an error: every draw comes in a :class:`Draws`."""
        prefix = "module."
        params = {prefix + k: v for k, v in self.replica.named_parameters()}
        params.update({prefix + k: v for k, v in self.replica.named_buffers()})
        kinds = [type(r) if not isinstance(r, torch.Tensor) else None for r in records]
        flat = [vars(r) if kind is not None else r for r, kind in zip(records, kinds, strict=True)]

        def one(p: dict, *args: Any) -> Any:
            rebuilt = [kind(**a) if kind is not None else a for a, kind in zip(args, kinds, strict=True)]
            return functional_call(self._calls[method], p, tuple(rebuilt))

        return vmap(one)(params, *flat)

    def _fn(self, method: str):
        """``per_seed`` for ``method``, through ``torch.compile`` when the replica has ``compile=True``."""
        hp = self.replica.hparams
        if not hp.get("compile"):
            return lambda *records: self.per_seed(method, *records)
        if method not in self._compiled:
            mode = hp.get("compile_mode") if method == "compute_losses" else None
            fn = lambda *records: self.per_seed(method, *records)  # noqa: E731
            self._compiled[method] = torch.compile(fn, dynamic=False, mode=mode)
        return self._compiled[method]

    # ----- the fused update --------------------------------------------------------------------------
    def draw(self, batch_size: int, step: int) -> Draws:
        """Every seed's draws of training step ``step``, stacked ``(S, B, ...)``: seed ``s``'s are exactly those of
        the run ``seed=s`` (:meth:`FlowQModule.step_draws`, a global batch's split included)."""
        split = global_batch_split(self._trainer)
        rank = self.global_rank
        return stack_records([self.replica.step_draws(batch_size, step, s, rank, split) for s in self.seeds])

    def update(self, batch: ChunkBatch, draws: Draws, optimizer: torch.optim.Optimizer) -> dict:
        """One update of every seed: losses ``(S,)``, their sum backward, targets, one Adam step."""
        critic_term, actor_term, info = self._fn("compute_losses")(batch, draws)
        optimizer.zero_grad(set_to_none=True)
        self._backward((critic_term + actor_term).sum())
        every = self.replica.hparams.check_finite_every
        restore = None
        if every > 0 and self.global_step % every == 0:
            restore = self._finite_or_skip(critic_term, actor_term, optimizer)
        self.replica.update_targets()
        optimizer.step()
        if restore is not None:
            restore()
        return {"critic_loss": critic_term.detach(), "actor_loss": actor_term.detach(), **info}

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _finite_or_skip(self, critic_term: torch.Tensor, actor_term: torch.Tensor, optimizer):
        """Per-seed NaN/inf guard (one host sync). Returns None, or with ``skip_nonfinite`` a function that,
        after the step, puts back the bad seeds' weights, targets and Adam moments (and counts the skip).

        Adam's step counter is shared, so a skipped seed's later bias correction is one step ahead of
        what its single run would use; raising (the default) has no such caveat."""
        S = self.num_seeds
        terms = [critic_term.detach(), actor_term.detach()]
        grads = [p.grad for p in self.replica.parameters() if p.grad is not None]
        if grads:
            terms.append(torch.stack([g.reshape(S, -1).sum(dim=1) for g in grads]).sum(dim=0))
        finite = torch.isfinite(torch.stack(terms)).all(dim=0)  # (S,)
        if bool(finite.all()):
            return None
        bad = torch.nonzero(~finite).flatten()
        names = ", ".join(f"seed {self.seeds[i]}" for i in bad.tolist())
        if not self.replica.hparams.skip_nonfinite:
            raise NonFiniteError(
                f"step {self.global_step}: non-finite loss or gradient in {names}. Training stopped before this "
                "update; the last checkpoint holds the last good weights. To skip such batches instead: "
                "model.skip_nonfinite=true"
            )
        tensors = [*self.replica.parameters(), *self.replica.buffers()]
        tensors += [v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v) and v.dim() > 0]
        kept = [t.detach()[bad].clone() for t in tensors]

        def restore() -> None:
            with torch.no_grad():
                for t, k in zip(tensors, kept, strict=True):
                    t[bad] = k
                for st in optimizer.state.values():  # moments Adam created at this step start at zero
                    for v in st.values():
                        if torch.is_tensor(v) and v.dim() > 0 and all(v is not t for t in tensors):
                            v[bad] = 0
                self.replica.skipped_updates[bad] += 1

        return restore

    def training_step(self, batch: ChunkBatch, batch_idx: int) -> None:
        draws = self.draw(batch.observations.shape[1], self.global_step)
        info = self.update(batch, draws, self.optimizers())
        if batch_idx % self.replica.hparams.log_every == 0:
            self.log_dict(self.train_metrics(info), on_step=True, on_epoch=False)

    def train_metrics(self, info: dict) -> dict[str, torch.Tensor]:
        """The replica's scalars, once per seed, as ``seed<s>/<name>`` (e.g. ``seed3/train/critic_loss``)."""
        metrics = {}
        for i, s in enumerate(self.seeds):
            one = self.replica.train_metrics({k: v[i] for k, v in info.items()})
            if "train/skipped_updates" in one:
                one["train/skipped_updates"] = self.replica.skipped_updates[i].float()
            metrics.update({f"seed{s}/{k}": v for k, v in one.items()})
        return metrics

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The replica's own optimizer, over the stacked tensors (Adam is elementwise: per-seed moments)."""
        return self.replica.configure_optimizers()

    # ----- evaluation and checkpoints ------------------------------------------------------------
    @torch.no_grad()
    def sample_chunks(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Every seed's evaluation policy in one batched call: ``obs (S, N, O)``, ``noise (S, N, D)``
        -> ``(S, N, h, A)``."""
        return self._fn("sample_chunks")(obs, noise)

    @torch.no_grad()
    def act_seeds(self, obs: np.ndarray, noise_seeds: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """The evaluation contract for S seeds (``evaluator.py``): ``obs (S, M, O)`` -> ``(S, M, h, A)``,
        row ``m`` of seed ``i`` with the noise the single run's ``act_seeded`` draws from ``noise_seeds[i, m]``
        (``-1``: a padding row, zero noise). A method that overrides ``act`` is run through its own ``act``."""
        if type(self.replica).act is not FlowQModule.act:
            return self._act_each_seed(obs, noise_seeds, generator)
        dim = self.replica.policy.chunk_dim
        noise = torch.zeros(*noise_seeds.shape, dim, device=generator.device)
        for i, m in zip(*np.nonzero(noise_seeds >= 0), strict=True):
            generator.manual_seed(int(noise_seeds[i, m]))
            noise[i, m] = torch.randn(1, dim, generator=generator, device=generator.device)[0]
        obs_t = torch.as_tensor(obs, dtype=torch.float32).to(self.device)
        return self.sample_chunks(obs_t, noise.to(self.device)).cpu().numpy()

    def _act_each_seed(self, obs: np.ndarray, noise_seeds: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """Seed by seed, the method's own ``act_seeded`` on that seed's slice of the weights (padding rows: zeros)."""
        out = np.zeros((*noise_seeds.shape, self.chunk_size, self.replica.hparams.action_dim), np.float32)
        tensors = [*self.replica.named_parameters(), *self.replica.named_buffers()]
        for i in range(self.num_seeds):
            rows = np.nonzero(noise_seeds[i] >= 0)[0]
            weights = {f"module.{k}": v[i] for k, v in tensors}
            args = (obs[i, rows], [int(n) for n in noise_seeds[i, rows]], generator)
            out[i, rows] = functional_call(_Call(self.replica, "act_seeded"), weights, args) if len(rows) else 0
        return out

    def seed_index(self, seed: int) -> int:
        if seed not in self.seeds:
            raise UserError(f"seed={seed} is not one of this run's seeds={self.seeds}; pick one of them")
        return self.seeds.index(seed)

    def replica_at(self, seed: int) -> FlowQModule:
        """Seed ``seed`` as an ordinary single-seed module (its own copy of the weights)."""
        i = self.seed_index(seed)
        hp = self.hparams
        module = build_replica(hp.replica, hp.replica_kwargs, seed)
        module.load_state_dict({k: v[i].clone() for k, v in self.replica.state_dict().items()})
        return module.to(self.device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The class (as every FlowQModule records it) and the replica's own hparams, for export and fit checks."""
        checkpoint[MODULE_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint[REPLICA_HPARAMS] = self._replica_hparams()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse another class, other seeds or other network shapes in one line, before any weight loads."""
        problem = fit_problem(checkpoint, dict(self.hparams), f"{type(self).__module__}.{type(self).__qualname__}")
        if problem is None and REPLICA_HPARAMS in checkpoint:
            problem = fit_problem({"hyper_parameters": checkpoint[REPLICA_HPARAMS]}, self._replica_hparams(), None)
        if problem:
            raise UserError(f"ckpt_path={self._trainer.ckpt_path if self._trainer else '?'} {problem}")

    def _replica_hparams(self) -> dict[str, Any]:
        return {k: v for k, v in dict(self.replica.hparams).items() if k != "seed"}

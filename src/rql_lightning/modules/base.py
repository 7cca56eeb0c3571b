"""FlowQModule: what every flow-policy Q-learning method shares (docs/algorithm.md (U1)-(U6), one optimizer, a group
per network), for one run or, with ``seeds`` (and ``task_ids``), ``R`` replicas stacked on a leading axis."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.func import functional_call, vmap

from rql_lightning.batch import ChunkBatch, Draws, stack_records
from rql_lightning.checks import MODULE_CLASS_KEY, fit_problem
from rql_lightning.errors import NonFiniteError, UserError
from rql_lightning.flow import FlowPolicy
from rql_lightning.naming import class_path, replica_key
from rql_lightning.nets import EnsembleMLP
from rql_lightning.seeding import DRAW_STREAM, seeded_generator


class _Replicated(type):
    """Builds a module with ``seeds`` as ``R`` single runs stacked on a leading axis, once the method's own
    ``__init__`` (which may add networks after the base's) has finished."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        seeds, task_ids = kwargs.get("seeds"), kwargs.get("task_ids")
        if seeds is None and task_ids is None:  # one run: its hyperparameters as they always were (no replica keys)
            module = super().__call__(*args, **kwargs)
            for hp in (module.hparams, module._hparams_initial):
                hp.pop("seeds", None)
                hp.pop("task_ids", None)
            return module
        seeds = None if seeds is None else [int(s) for s in seeds]
        task_ids = None if task_ids is None else [int(t) for t in task_ids]
        with torch.random.fork_rng(devices=[]):  # the stacked module's own first weights are overwritten
            module = super().__call__(*args, **{**kwargs, "seeds": seeds, "task_ids": task_ids})
        for hp in (module.hparams, module._hparams_initial):
            hp["seed"] = None  # one module, R runs: only seeds (and task_ids) name them
            if task_ids is None:
                hp.pop("task_ids", None)  # a seed batch's hyperparameters as they were
        runs = []
        for s in seeds:  # a run's first weights depend on its seed only (its task changes only the rewards)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                runs.append(super().__call__(*args, **{**kwargs, "seeds": None, "task_ids": None, "seed": s}))
        module._stack(runs)
        return module


class FlowQModule(L.LightningModule, metaclass=_Replicated):
    """Base class: flow actor + critic ensemble, targets, one manual update per batch. ``name``: see
    :attr:`method_name`. ``seeds``: one run per seed, None for one run of ``seed``; ``task_ids``: replica ``i`` is task
    ``task_ids[i]`` with seed ``seeds[i]`` (tasks of one dataset: only its batches' rewards and masks differ)."""

    default_name: str = "flowq"
    # False for a method whose sample_chunks is host code that vmap cannot batch: act then calls it replica by replica
    vmap_policy: bool = True

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
        seed: int | None = 0,
        check_finite_every: int = 1,
        skip_nonfinite: bool = False,
        name: str | None = None,
        seeds: Sequence[int] | None = None,
        task_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if task_ids is not None:
            if seeds is None or len(seeds) != len(task_ids):
                raise UserError(f"task_ids={list(task_ids)} needs seeds of the same length, one (task, seed) a replica")
            if len(set(zip(task_ids, seeds, strict=True))) != len(seeds):
                raise UserError(f"task_ids={list(task_ids)}, seeds={list(seeds)}: each (task, seed) replica once")
        elif seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
            raise UserError(f"seeds={list(seeds)} must be a non-empty list of distinct seeds; e.g. seeds=[0,1,2,3]")
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
        self._compiled: dict[str, Any] = {}

    @property
    def method_name(self) -> str:
        """The short name results tables use: ``name`` if given, else the class's ``default_name``."""
        return self.hparams.get("name") or self.default_name

    @property
    def seeds(self) -> list[int] | None:
        """The replicas' run seeds, or None for a single run (no replica axis)."""
        return None if self.hparams.get("seeds") is None else list(self.hparams.seeds)

    @property
    def task_ids(self) -> list[int] | None:
        """The replicas' task ids (aligned with :attr:`seeds`), or None when every replica is the run's one task."""
        return None if self.hparams.get("task_ids") is None else list(self.hparams.task_ids)

    @property
    def replica_names(self) -> list[str]:
        """Replica ``i``'s prefix in metric names and run records: ``task<t>/seed<s>`` with :attr:`task_ids`,
        else ``seed<s>``; empty for a single run."""
        if self.seeds is None:
            return []
        return [replica_key(t, s) for t, s in zip(self.task_ids or [None] * len(self.seeds), self.seeds, strict=True)]

    def _stack(self, runs: Sequence[FlowQModule]) -> None:
        """Every parameter and buffer becomes the stack ``(R, ...)`` of the runs' own."""
        for name, mod in self.named_modules():
            others = [r.get_submodule(name) for r in runs]
            for key, p in list(mod._parameters.items()):
                if p is not None:
                    stacked = torch.stack([o._parameters[key].detach() for o in others])
                    mod._parameters[key] = nn.Parameter(stacked, requires_grad=p.requires_grad)
            for key, b in list(mod._buffers.items()):
                if b is not None:
                    mod._buffers[key] = torch.stack([o._buffers[key] for o in others])

    def forward(self, method: str, *args: Any) -> Any:
        """``self.<method>(*args)``: how ``functional_call`` runs any method on other weights (a method keeps it)."""
        return getattr(self, method)(*args)

    def per_replica(self, method: str, *records: Any) -> Any:
        """``self.<method>(*records)`` of one run, for every replica: ``vmap`` over the replica axis of the weights
        and of every record (:class:`ChunkBatch`, :class:`Draws`, tensors: ``(R, ...)``), as are the results.
        Randomness inside is an error: every draw comes in a :class:`Draws`."""
        weights = dict([*self.named_parameters(), *self.named_buffers()])
        kinds = [None if isinstance(r, torch.Tensor) else type(r) for r in records]
        # Fields through dataclasses.fields, not vars(): torch.compile (dynamo, torch 2.11) cannot trace __dict__.
        flat = [
            r if kind is None else {f.name: getattr(r, f.name) for f in fields(r)}
            for r, kind in zip(records, kinds, strict=True)
        ]

        def one(w: dict, *args: Any) -> Any:
            rebuilt = [a if kind is None else kind(**a) for a, kind in zip(args, kinds, strict=True)]
            return functional_call(self, w, (method, *rebuilt))

        return vmap(one)(weights, *flat)

    def replica(self, index: int) -> FlowQModule:
        """Replica ``index`` as an ordinary single-run module (its own copy of the weights)."""
        with torch.random.fork_rng(devices=[]):  # its first weights are overwritten: leave the global RNG alone
            module = type(self)(**{**dict(self.hparams), "seeds": None, "task_ids": None, "seed": self.seeds[index]})
        module.load_state_dict({k: v[index].clone() for k, v in self.state_dict().items()})
        return module.to(self.device)

    def draw(self, batch_size: int, generator: torch.Generator | None = None) -> Draws:
        """All random numbers of one run's update, on the module's device."""
        return Draws.sample(batch_size, self.policy.chunk_dim, self.policy.flow_steps, self.device, generator)

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError("a FlowQModule subclass defines critic_loss(batch, draws)")

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError("a FlowQModule subclass defines actor_loss(batch, draws)")

    @torch.no_grad()
    def sample_chunks(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One run's evaluation policy: the EMA actor's flow from ``noise (N, D)``; returns ``(N, h, A)``."""
        return self.ema_policy.split_chunk(self.ema_policy.sample(obs, noise))

    def compute_losses(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """One run's losses at the current weights: ``(critic_loss, actor_loss, info)``."""
        critic_term, critic_info = self.critic_loss(batch, draws)
        actor_term, actor_info = self.actor_loss(batch, draws)
        return critic_term, actor_term, {**critic_info, **actor_info}

    def update(self, batch: ChunkBatch, draws: Draws, optimizer: torch.optim.Optimizer) -> dict:
        """One full update of every replica; returns the loss terms (tensors, ``(R,)`` with replicas; not synced
        to host). The replicas' losses are summed, never averaged: each one's gradients stay its own."""
        critic_term, actor_term, info = self._fast("compute_losses", self.hparams.compile_mode)(batch, draws)
        optimizer.zero_grad(set_to_none=True)
        loss = (critic_term + actor_term).sum()
        if self._trainer is not None:
            self.manual_backward(loss)
        else:  # used outside a Trainer (tests, notebooks)
            loss.backward()
        every = self.hparams.check_finite_every
        due = every > 0 and self.global_step % every == 0
        restore = self._finite_or_skip(critic_term, actor_term, optimizer) if due else None
        if restore is not False:
            self._fast("update_targets")()
            optimizer.step()
        if callable(restore):
            restore()
        return {"critic_loss": critic_term.detach(), "actor_loss": actor_term.detach(), **info}

    def _fast(self, method: str, mode: str | None = None):
        """``per_replica(method)`` (for ``update_targets``, elementwise: the method itself), through ``torch.compile``
        when ``compile=True``: ``mode="reduce-overhead"`` adds CUDA graphs on GPU, None is inductor's default.
        Adam needs no compiling: it is one fused kernel."""
        if method in self._compiled:
            return self._compiled[method]
        fn = getattr(self, method)
        if self.seeds is not None and method != "update_targets":
            fn = functools.partial(self.per_replica, method)
        if self.hparams.compile:
            fn = self._compiled[method] = torch.compile(fn, dynamic=False, mode=mode)
        return fn

    def _finite_or_skip(self, critic_term: torch.Tensor, actor_term: torch.Tensor, optimizer) -> Any:
        """(U4) per replica, one host sync: raise :class:`NonFiniteError` naming the step, the terms and the bad
        replicas, or with ``skip_nonfinite`` drop and count the bad replicas' update. Returns None when all are
        finite, False when none is (nothing steps), else a function that puts the bad replicas back after the step
        (Adam's step counter is shared: a replica skipped alone later bias-corrects one step ahead of its run)."""
        lead = () if self.seeds is None else (len(self.seeds),)
        terms = {"critic_loss": critic_term.detach(), "actor_loss": actor_term.detach()}
        critic = {id(p) for p in self.critic.parameters()}
        for name, params in (
            ("actor gradient", [p for p in self.parameters() if id(p) not in critic]),
            ("critic gradient", list(self.critic.parameters())),
        ):
            grads = [p.grad for p in params if p.grad is not None]
            if grads:  # each replica's slice of each gradient, normed in one fused call
                views = grads if not lead else [g[i] for i in range(lead[0]) for g in grads]
                terms[name] = torch.stack(torch._foreach_norm(views)).reshape(*lead, -1).sum(-1)
        finite = torch.isfinite(torch.stack(list(terms.values())))  # (T, *lead)
        ok = finite.reshape(len(terms), -1).all(0)  # (R,)
        if bool(ok.all()):
            return None
        bad = torch.nonzero(~ok).flatten()
        names = [name for name, f in zip(terms, finite.reshape(len(terms), -1).all(1).tolist(), strict=True) if not f]
        tasks = [f"task {t} " for t in self.task_ids] if self.task_ids else [""] * lead[0] if lead else []
        where = f" in {', '.join(f'{tasks[i]}seed {self.seeds[i]}' for i in bad.tolist())}" if lead else ""
        if not self.hparams.skip_nonfinite:
            raise NonFiniteError(
                f"step {self.global_step}: non-finite {', '.join(names)}{where}. Training stopped before this update; "
                "the last checkpoint holds the last good weights. To skip such batches instead: "
                "model.skip_nonfinite=true"
            )
        if len(bad) == len(ok):  # every replica (a single run's only case): no step at all
            self.skipped_updates += 1
            optimizer.zero_grad(set_to_none=True)  # Adam leaves parameters without gradients untouched
            optimizer.step()
            return False
        tensors = [*self.parameters(), *self.buffers()]
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
                self.skipped_updates[bad] += 1

        return restore

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

    def replica_draws(self, batch_size: int, step: int | None = None) -> Draws:
        """(U1) of step ``step`` (default: this one) on this rank, ``(R, B, ...)`` (a single run: ``(B, ...)``); replica
        ``i`` draws what the run ``seed=seeds[i]`` does. Under ``data.global_batch_size`` a rank draws the global
        batch as rank 0 and keeps its rows: N ranks draw what one process with the full batch draws."""
        step = self.global_step if step is None else step
        trainer, rows = self._trainer, slice(self.global_rank * batch_size, (self.global_rank + 1) * batch_size)
        split = (
            trainer.world_size if trainer is not None and getattr(trainer.datamodule, "global_batch_size", None) else 1
        )
        rank = 0 if split > 1 else self.global_rank
        g = getattr(self, "_step_generator", None)
        if g is None or g.device != self.device:
            g = self._step_generator = torch.Generator(device=self.device)

        def one(seed: int) -> Draws:
            draws = self.draw(batch_size * split, seeded_generator(seed, rank, step, DRAW_STREAM, generator=g))
            return draws if split == 1 else type(draws)(**{k: v[rows] for k, v in vars(draws).items()})

        return one(self.hparams.seed) if self.seeds is None else stack_records([one(s) for s in self.seeds])

    def training_step(self, batch: ChunkBatch, batch_idx: int) -> None:
        draws = self.replica_draws(batch.observations.shape[-2])
        info = self.update(batch, draws, self.optimizers())
        if batch_idx % self.hparams.log_every == 0:
            self.log_dict(self.train_metrics(info), on_step=True, on_epoch=False)

    def train_metrics(self, info: dict) -> dict[str, torch.Tensor]:
        """Scalars for TensorBoard, called every ``log_every`` steps only: a single run's ``train/<name>``, with
        replicas ``seed<s>/train/<name>`` per replica (as each one's single run logs them)."""
        metrics = {}
        for i, name in enumerate(self.replica_names or [""]):
            run = {k: v[i] for k, v in info.items()} if name else info
            if self.hparams.skip_nonfinite:
                run = {**run, "skipped_updates": (self.skipped_updates[i] if name else self.skipped_updates).float()}
            if "q" in run:
                q = run["q"].detach()
                run = {**run, "q_mean": q.mean(), "q_max": q.max(), "q_min": q.min()}
            metrics.update({f"{name}/train/{k}" if name else f"train/{k}": v for k, v in run.items() if v.dim() == 0})
        return metrics

    def optimizer_groups(self) -> list[dict]:
        """What the optimizer trains, a group per network with its learning rate (a method adds or drops its own)."""
        return [
            {"params": list(self.policy.parameters()), "lr": self.hparams.actor_lr},
            {"params": list(self.critic.parameters()), "lr": self.hparams.critic_lr},
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the (stacked) tensors: elementwise, so each replica's moments are its own."""
        # Fused Adam: one kernel for all parameters (same arithmetic as the reference's optax.adam).
        return torch.optim.Adam(self.optimizer_groups(), eps=1e-8, fused=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the class, so a resume into another method is named as such (``checks.fit_problem``)."""
        checkpoint[MODULE_CLASS_KEY] = class_path(type(self))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of another class, other seeds or other shapes before Lightning loads a weight
        (whatever path it resolved: ``ckpt_path=last`` included), in one line instead of a wall of size mismatches."""
        problem = fit_problem(checkpoint, dict(self.hparams), class_path(type(self)))
        if problem:
            raise UserError(f"ckpt_path={self._trainer.ckpt_path if self._trainer else '?'} {problem}")

    @property
    def noise_dim(self) -> int:
        """The size of one row of :meth:`act`'s noise (the flattened chunk the flow starts from)."""
        return self.policy.chunk_dim

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The one way to act: each run's :meth:`sample_chunks`. A single run: ``obs (N, O)``, ``noise (N, D)`` ->
        ``(N, h, A)``; with replicas ``(R, N, O)``, ``(R, N, D)`` -> ``(R, N, h, A)``, all in one vmapped call
        (replica by replica for a method with ``vmap_policy = False``)."""
        if self.seeds is None:
            return self.sample_chunks(obs, noise)
        if self.vmap_policy:
            return self._fast("sample_chunks")(obs, noise)
        tensors = [*self.named_parameters(), *self.named_buffers()]
        return torch.stack(
            [
                functional_call(self, {k: v[i] for k, v in tensors}, ("sample_chunks", obs[i], noise[i]))
                for i in range(len(self.seeds))
            ]
        )

"""What the evaluation callback publishes, and the one place others read it.

Readers (``summary.json``, ``training.summarize``, a notebook) need the latest numbers and the whole
curve without knowing which callback measured them, so nobody searches ``trainer.callbacks`` by type:

* scalars: after every evaluation ``eval/success_rate``, ``eval/return``, ``eval/length`` and
  ``eval/episodes`` are in ``trainer.callback_metrics`` (Lightning's channel for a callback's numbers:
  ``ModelCheckpoint(monitor=...)`` and early stopping read it, and a ``ddp_spawn`` launcher copies it back
  to the launching process);
* the curve: the :class:`EvalHistory` (every evaluation of this run, including those restored from the
  checkpoint it resumed from) is the attribute :data:`PUBLISHED_ATTR` of the LightningModule, set by the
  callback in ``setup``.  The module is what every hook and the code after ``fit`` hold, it is one per run
  (no global registry), and it works whatever the callback order.  Read it with :func:`published`.

The history survives resume through the callback's ``state_dict`` (:meth:`EvalHistory.state_dict`).

A seed-batched run (``module.seeds``) is ``S`` runs: each seed's scalars are ``seed<s>/eval/*``
(:func:`seed_key`, as its training scalars are ``seed<s>/train/*``) and its curve is its own
:class:`EvalHistory` in the dict :data:`PUBLISHED_SEEDS_ATTR` (seed -> history, :func:`published_seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rql_lightning.envs import EvalResult

__all__ = [
    "PUBLISHED_ATTR",
    "PUBLISHED_SEEDS_ATTR",
    "EvalHistory",
    "EvalPoint",
    "eval_metrics",
    "publish",
    "publish_seeds",
    "published",
    "published_seeds",
    "seed_key",
]

PUBLISHED_ATTR = "eval_history"
PUBLISHED_SEEDS_ATTR = "seed_eval_histories"


def seed_key(seed: int | None, key: str) -> str:
    """``key`` of seed ``seed`` of a seed-batched run (``seed3/eval/return``); ``key`` itself for ``None``."""
    return key if seed is None else f"seed{int(seed)}/{key}"


def eval_metrics(result: EvalResult, seed: int | None = None) -> dict[str, float]:
    """The published scalars of one evaluation (of seed ``seed`` of a seed-batched run)."""
    return {
        seed_key(seed, "eval/success_rate"): result.success_rate,
        seed_key(seed, "eval/return"): result.mean_return,
        seed_key(seed, "eval/length"): result.mean_length,
        seed_key(seed, "eval/episodes"): float(result.num_episodes),
    }


class EvalPoint(NamedTuple):
    """One evaluation in summary: ``step`` in training batches (the x of the ``eval/*`` logs)."""

    step: int
    success_rate: float
    mean_return: float
    episodes: int


@dataclass
class EvalHistory:
    """Evaluations of one run: ``results`` of this process (full :class:`EvalResult`, frames of the latest
    only), ``restored`` summaries from the checkpoint it resumed from, and the env they ran on."""

    env_name: str | None = None
    results: list[tuple[int, EvalResult]] = field(default_factory=list)
    restored: list[EvalPoint] = field(default_factory=list)

    @property
    def last(self) -> EvalResult | None:
        return self.results[-1][1] if self.results else None

    def __len__(self) -> int:
        return len(self.results)

    def record(self, step: int, result: EvalResult) -> None:
        if self.results:  # keep frames of the latest evaluation only
            self.results[-1][1].frames, self.results[-1][1].videos = [], []
        self.results.append((int(step), result))

    def curve(self) -> list[EvalPoint]:
        """Every evaluation by step: restored ones, then this run's (which win on an equal step)."""
        points = {int(p.step): EvalPoint(*p) for p in self.restored}
        for step, r in self.results:
            points[step] = EvalPoint(step, r.success_rate, r.mean_return, r.num_episodes)
        return [points[s] for s in sorted(points)]

    def state_dict(self) -> list[tuple[int, float, float, int]]:
        return [tuple(p) for p in self.curve()]

    def load_state_dict(self, state: list[Any]) -> None:
        self.restored = [EvalPoint(int(s), float(sr), float(ret), int(n)) for s, sr, ret, n in state]


def publish(module: Any, history: EvalHistory) -> None:
    """Make ``history`` the module's published evaluation record."""
    setattr(module, PUBLISHED_ATTR, history)


def published(module: Any) -> EvalHistory | None:
    """The evaluation record published on ``module``; None when nothing evaluates it."""
    history = getattr(module, PUBLISHED_ATTR, None)
    return history if isinstance(history, EvalHistory) else None


def publish_seeds(module: Any, histories: dict[int, EvalHistory]) -> None:
    """Make ``histories`` (seed -> its record) the seed-batched module's published evaluation records."""
    setattr(module, PUBLISHED_SEEDS_ATTR, histories)


def published_seeds(module: Any) -> dict[int, EvalHistory]:
    """Seed -> evaluation record published on a seed-batched module; empty when nothing evaluates it."""
    histories = getattr(module, PUBLISHED_SEEDS_ATTR, None)
    return dict(histories) if isinstance(histories, dict) else {}

"""A run's hyperparameters and final numbers in TensorBoard's HParams view, so a sweep compares there.

Lightning's ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes the HParams plugin's summaries
and the metrics as scalars (at step 0, so they get tags of their own, ``final/*``, and never touch the
``eval/*`` curves).  Params are the run's config flattened to ``group.key`` names (as on the command line),
plus ``run.method`` and ``run.data``; values that are not numbers, strings or booleans become strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["flatten", "log_hparams"]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"alpha": 3}}`` -> ``{"model.alpha": 3}``; lists and None as strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def log_hparams(loggers: Iterable[Any], params: dict[str, Any], metrics: dict[str, float | None]) -> None:
    """``params`` and the finite ``metrics`` to the HParams view of every TensorBoard logger in ``loggers``."""
    import math

    from lightning.pytorch.loggers import TensorBoardLogger

    numbers = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and numbers:
            logger.log_hyperparams(params, numbers)

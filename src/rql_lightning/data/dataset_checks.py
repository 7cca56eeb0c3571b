"""What makes a dataset unusable, checked before training sees it (a NaN found at load, not as a NaN loss hours in):
each check raises a :class:`DatasetError` (a ``UserError``: one ``error:`` line) naming the source and a fix.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rql_lightning.errors import UserError

ACTION_TOLERANCE = 1e-3  # actions beyond [-1, 1] by more than this are an error
ACTION_CLIP_EPS = 1e-5  # then clipped to [-1 + eps, 1 - eps] (the reference's convention)
ArrayHeader = tuple[tuple[int, ...], np.dtype]


class DatasetError(UserError, ValueError):
    """A dataset cannot be trained on as it is; the message says which one and how to fix it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file is absent and could not be fetched; the message says how to get it."""


class DatasetFormatError(DatasetError):
    """Unreadable file, missing keys, pickled (object) arrays, or arrays of the wrong rank or length."""


class EmptyDatasetError(DatasetError):
    """No transitions at all."""


class NonFiniteDataError(DatasetError):
    """NaN or inf in observations, actions or rewards."""


class ActionRangeError(DatasetError):
    """Actions outside ``[-1, 1]`` beyond the tolerance (the flow policy's output range)."""


class EpisodeBoundaryError(DatasetError):
    """The last transition does not close an episode (truncated file, or terminals missing)."""


class SpaceMismatchError(DatasetError):
    """Observation or action dims differ from the environment's spaces."""


class ChunkTooLongError(DatasetError):
    """Every episode is shorter than ``chunk_size``: no window would be valid."""


class BatchTooLargeError(DatasetError):
    """``batch_size`` exceeds the number of transitions."""


class DataConfigError(DatasetError):
    """A ``data.*`` setting that cannot work (unknown kind, batch not divisible by the ranks, bad counts)."""


class DownloadError(DatasetError):
    """A download failed, stopped short or delivered a file that is not a dataset; nothing partial was named."""


def npz_headers(path: str | Path) -> dict[str, ArrayHeader]:
    """``{key: (shape, dtype)}`` of every array in ``path``; raises what ``zipfile``/numpy raise on a bad file."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as f:
                fmt = np.lib.format
                read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = read(f)
            headers[member[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
    return headers


def check_npz_keys(path, required: Iterable[str], fix: str) -> dict[str, ArrayHeader]:
    """The array headers of ``path`` (an ``.npz``); raises if it is unreadable, lacks a key, or pickles objects."""
    try:
        headers = npz_headers(path)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise DatasetFormatError(
            f"{path} is not a readable .npz ({type(err).__name__}: {err}); it may be a truncated download. "
            f"To fix: {fix}"
        ) from None
    missing = [k for k in required if k not in headers]
    if missing:
        raise DatasetFormatError(
            f"{path} lacks the key(s) {missing} (it has {sorted(headers)}); an OGBench-format file holds "
            f"observations, actions, terminals and the qpos/qvel/button_states that single-task relabelling reads. "
            f"To fix: {fix}"
        )
    pickled = sorted(k for k, (_, dtype) in headers.items() if dtype.hasobject)
    if pickled:
        raise DatasetFormatError(
            f"{path} stores {pickled} as object (pickled) arrays, which are not loaded (unpickling runs code); "
            f"save them as numeric arrays (np.asarray(x, dtype=np.float32)). To fix: {fix}"
        )
    return headers


def check_same_layout(
    paths: Sequence[Path], required: list[str], fix: str, row_shapes: dict[str, tuple[int, ...]]
) -> None:
    """Every file of ``paths`` holds the ``row_shapes`` (the env's spaces) and every ``required`` key with the first
    file's per-row shape and dtype (headers only: nothing loaded)."""
    first = None
    for path in paths:
        headers = check_npz_keys(path, required, fix)
        for key, want in row_shapes.items():
            if headers[key][0][1:] != tuple(want):
                raise SpaceMismatchError(
                    f"{path}: {key} have shape {headers[key][0][1:]} per row but the environment's space is "
                    f"{tuple(want)}; the file belongs to another environment or is damaged. To fix: {fix}"
                )
        first = first or headers
        for key in required:
            (shape, dtype), (want, want_dtype) = headers[key], first[key]
            if shape[1:] != want[1:] or dtype != want_dtype:
                raise DatasetFormatError(
                    f"{path}: {key} has per-row shape {shape[1:]} and dtype {dtype}, but {paths[0].name} has "
                    f"{want[1:]} and {want_dtype}; every file of a dataset holds the same columns. To fix: {fix}"
                )


def check_transitions(
    source: str,
    observations: np.ndarray,
    actions: np.ndarray,
    terminals: np.ndarray,
    rewards: np.ndarray | None = None,
    *,
    action_tolerance: float = ACTION_TOLERANCE,
    obs_shape: Sequence[int] | None = None,
    action_shape: Sequence[int] | None = None,
    fix: str,  # completes "...; to fix: <fix>"
) -> None:
    """Validate per-row arrays before any conversion; ``obs_shape``/``action_shape``: the env's spaces, if at hand."""
    n = len(terminals)
    if n == 0 or len(observations) == 0:
        raise EmptyDatasetError(f"{source} holds no transitions; to fix: {fix}")
    if observations.ndim != 2 or actions.ndim != 2:
        raise DatasetFormatError(
            f"{source}: observations {observations.shape} and actions {actions.shape} must both be 2-D "
            f"(rows, features); image or dict observations need flattening first"
        )
    lengths = {"observations": len(observations), "actions": len(actions), "terminals": n}
    if rewards is not None:
        lengths["rewards"] = len(rewards)
    if len(set(lengths.values())) != 1:
        raise DatasetFormatError(
            f"{source}: per-row arrays differ in length ({lengths}); the file is corrupt or was written "
            f"by a broken converter; to fix: {fix}"
        )
    for name, arr in (("observations", observations), ("actions", actions), ("rewards", rewards)):
        if arr is None or not np.issubdtype(arr.dtype, np.floating):
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
            raise NonFiniteDataError(
                f"{source}: {int(bad.sum())} NaN/inf value(s) in {name} (first at row {row}). "
                f"Drop those episodes, or to fix: {fix}"
            )
    if action_tolerance is not None and actions.size:
        low, high = float(actions.min()), float(actions.max())
        if low < -1 - action_tolerance or high > 1 + action_tolerance:
            raise ActionRangeError(
                f"{source}: actions span [{low:g}, {high:g}] but the flow policy acts in [-1, 1] "
                f"(tolerance {action_tolerance:g}). Rescale actions to [-1, 1] (and the environment with "
                f"gymnasium.wrappers.RescaleAction), or raise data.action_tolerance if these are rounding errors"
            )
    if not terminals[-1]:
        raise EpisodeBoundaryError(
            f"{source}: the last row is not terminal, so the final episode never closes (a truncated file, or "
            f"terminals not recorded). Set terminals on every episode's last row, or to fix: {fix}"
        )
    for what, shape, arr in (("observation", obs_shape, observations), ("action", action_shape, actions)):
        if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
            raise SpaceMismatchError(
                f"{source}: {what}s have shape {tuple(arr.shape[1:])} per row but the environment's {what} space "
                f"is {tuple(shape)}; the dataset belongs to another environment (check task= / the file name)"
            )


def check_arrays(source: str, a, fix: str, tolerance: float | None) -> None:
    """:func:`check_transitions` of the arrays of a :class:`~rql_lightning.data.windows.OfflineArrays`."""
    check_transitions(source, a.observations, a.actions, a.terminals, a.rewards, action_tolerance=tolerance, fix=fix)


def check_windows(source: str, terminals: np.ndarray, chunk_size: int, batch_size: int) -> None:
    """Some episode fits a valid ``chunk_size`` window (one of at least ``h`` transitions, and the sampler starts
    windows only in episodes of >= 2), and ``batch_size`` is within the dataset's size."""
    n = len(terminals)  # > 0: every loader ran check_transitions
    ends = np.flatnonzero(np.asarray(terminals) > 0)
    longest = int(np.diff(np.concatenate([[-1], ends])).max(initial=0))  # transitions per episode
    need = max(chunk_size, 2)
    if longest < need:
        raise ChunkTooLongError(
            f"{source}: the longest episode has {longest} transition(s), fewer than the {need} a window of "
            f"chunk_size={chunk_size} needs, so every window would be invalid. Lower task.chunk_size or use "
            f"a dataset with longer episodes"
        )
    if batch_size > n:
        raise BatchTooLargeError(
            f"{source}: data.batch_size={batch_size} exceeds its {n} transitions. Lower data.batch_size "
            f"(or use a larger dataset)"
        )

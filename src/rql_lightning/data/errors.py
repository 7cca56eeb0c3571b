"""Every way a dataset can be unusable, as one family of :class:`~rql_lightning.errors.UserError` s.

Each message is one line naming the source (file, shard directory, Minari id or config key), what is
wrong and what to do; the CLI prints it as ``error: ...`` and exits 2.
"""

from __future__ import annotations

from rql_lightning.errors import UserError


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


class DatasetExistsError(DatasetError, FileExistsError):
    """Writing a dataset would overwrite one that exists."""

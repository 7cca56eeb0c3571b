"""The replay buffer: the offline rows (the offline tensors themselves, no copy) plus every online transition, in
OGBench's layout, so windows mean what they mean offline (:mod:`rql_lightning.data.windows`). The online part grows
geometrically, never past ``planned_rows``. Every append is a commit visible from a batch index on, so batch ``k`` is
a function of (seed, rank, ``k``) and the buffer's history, not of Lightning's prefetching.
"""

from __future__ import annotations

import numpy as np
import torch

from rql_lightning.data.windows import WindowSampler

FIELDS = ("observations", "actions", "rewards", "terminals", "masks")
MIN_GROWTH = 1024  # rows: the online part's first allocation


class ReplayBuffer:
    """Offline rows (``offline``: the datamodule's sampler), then at most ``planned_rows`` online rows, on the
    sampling device; a window source for ``WindowStream``."""

    def __init__(self, offline: WindowSampler, planned_rows: int) -> None:
        self.chunk_size = offline.chunk_size
        self.offline_rows = int(offline.terminals.shape[0])
        self.planned_rows = int(planned_rows)
        self._data = {name: getattr(offline, name) for name in FIELDS}  # (capacity, ...) each
        self.rows = self.offline_rows
        self._commits: list[tuple[int, int]] = [(-(2**62), self.rows)]  # (visible from batch, rows), in order
        self._view: tuple[int, WindowSampler] | None = None

    @property
    def device(self) -> torch.device:
        return self._data["observations"].device

    @property
    def online_rows(self) -> int:
        return self.rows - self.offline_rows

    @property
    def capacity(self) -> int:
        return int(self._data["observations"].shape[0])

    def field(self, name: str) -> torch.Tensor:
        """The first :attr:`rows` rows of one field (a view)."""
        return self._data[name][: self.rows]

    def online_arrays(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Host copies of online rows ``[start, stop)`` (0 is the first online row)."""
        lo, hi = self.offline_rows + start, self.offline_rows + stop
        return {name: self._data[name][lo:hi].cpu().numpy() for name in FIELDS}

    def _grow(self, needed: int) -> None:
        online_capacity = self.capacity - self.offline_rows
        want = max(needed, min(self.planned_rows, max(MIN_GROWTH, 2 * online_capacity)))
        for name, old in self._data.items():
            new = old.new_empty((self.offline_rows + want, *old.shape[1:]))
            new[: self.rows] = old[: self.rows]
            self._data[name] = new

    def add(self, rows: dict[str, np.ndarray], visible_from: int) -> None:
        """Append transitions (``rows[name]``, equal lengths, in episode order) for batches ``>= visible_from``."""
        n = len(rows["terminals"])
        if n == 0:
            return
        if self.rows + n > self.capacity:
            self._grow(self.online_rows + n)
        for name in FIELDS:
            value = torch.as_tensor(np.asarray(rows[name]), dtype=self._data[name].dtype)
            self._data[name][self.rows : self.rows + n] = value.to(self.device)
        self.rows += n
        self._commit(visible_from)

    def end_episode(self, visible_from: int) -> None:
        """Close the episode in progress at its last stored step (an episode cut short, like a time limit:
        its mask stays). A resume does this: the simulator state of the episode cannot be restored."""
        if self.online_rows > 0 and float(self._data["terminals"][self.rows - 1]) == 0.0:
            self._data["terminals"][self.rows - 1] = 1.0
            self._commit(visible_from)

    def _commit(self, visible_from: int) -> None:
        self._commits.append((int(visible_from), self.rows))
        self._view = None

    def visible_rows(self, index: int) -> int:
        """Rows batch ``index`` is drawn from: those of the last commit visible to it."""
        rows = self._commits[0][1]
        for start, n in self._commits:
            if start > index:
                break
            rows = n
        return rows

    def forget_before(self, index: int) -> None:
        """Drop commit records no batch ``>= index`` needs (keeps the list short)."""
        keep = 0
        while keep + 1 < len(self._commits) and self._commits[keep + 1][0] <= index:
            keep += 1
        del self._commits[:keep]

    def commits(self) -> list[list[int]]:
        return [list(c) for c in self._commits]

    def restore_commits(self, commits: list[list[int]]) -> None:
        self._commits = [(int(a), int(b)) for a, b in commits]
        self._view = None

    def sampler_at(self, index: int) -> WindowSampler:
        """The window sampler of batch ``index`` (``WindowStream.sampler_at`` asks for it)."""
        rows = self.visible_rows(index)
        if self._view is None or self._view[0] != rows:
            views = [self._data[name][:rows] for name in FIELDS]
            self._view = (rows, WindowSampler(*views, self.chunk_size, open_tail=True))
        return self._view[1]

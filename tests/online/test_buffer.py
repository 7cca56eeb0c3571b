"""The replay buffer: offline rows plus online rows, windows with the offline semantics, growth by what is added."""

from __future__ import annotations

import numpy as np
import torch

from rql_lightning.data.windows import WindowSampler
from rql_lightning.online.buffer import MIN_GROWTH, ReplayBuffer
from rql_lightning.online.phase import read_segments, write_segment

H = 2  # chunk size


def rows(first: float, n: int, terminal_last: bool, success_at: int | None = None) -> dict[str, np.ndarray]:
    """``n`` transitions with observation ``first + i`` (so a window's rows can be read off its observations)."""
    obs = (first + np.arange(n, dtype=np.float32))[:, None].repeat(3, axis=1)
    terminals = np.zeros(n, np.float32)
    terminals[-1] = float(terminal_last)
    masks = np.ones(n, np.float32)
    rewards = -np.ones(n, np.float32)
    if success_at is not None:
        masks[success_at], rewards[success_at] = 0.0, 0.0
    return {
        "observations": obs,
        "actions": obs[:, :2] / 100,
        "rewards": rewards,
        "terminals": terminals,
        "masks": masks,
    }


def offline_sampler() -> WindowSampler:
    a, b = rows(0, 4, True), rows(100, 3, True)
    t = {k: torch.from_numpy(np.concatenate([a[k], b[k]])) for k in a}
    return WindowSampler(t["observations"], t["actions"], t["rewards"], t["terminals"], t["masks"], H)


def all_starts(sampler: WindowSampler, n: int = 4000) -> set[int]:
    idx = sampler.sample_indices(n, torch.Generator().manual_seed(0))
    return set(idx[:, 0].tolist())


def test_half_finished_episode_gives_only_windows_whose_rows_exist():
    buffer = ReplayBuffer(offline_sampler(), planned_rows=100)
    buffer.add(rows(200, 3, True, success_at=2), visible_from=0)  # a finished online episode: rows 7..9
    buffer.add(rows(300, 4, False), visible_from=0)  # in progress: rows 10..13, no terminal yet
    sampler = buffer.sampler_at(0)
    assert sampler.episode_starts.tolist() == [0, 4, 7, 10]
    assert sampler.episode_ends.tolist() == [3, 6, 9, 13]
    # Finished episodes start anywhere before their last step; the one in progress only where t + h exists.
    assert sampler.episode_counts.tolist() == [3, 2, 2, 2]
    assert all_starts(sampler) == {0, 1, 2, 4, 5, 7, 8, 10, 11}


def test_a_window_of_an_episode_in_progress_is_the_window_the_finished_episode_gives():
    buffer = ReplayBuffer(offline_sampler(), planned_rows=100)
    buffer.add(rows(300, 4, False), visible_from=0)
    idx = buffer.sampler_at(0).sample_indices(512, torch.Generator().manual_seed(1))
    online = idx[idx[:, 0] >= buffer.offline_rows]
    assert len(online) > 0
    before = buffer.sampler_at(0).gather(online)
    tail = rows(304, 2, True)  # the episode goes on for two more steps and ends
    buffer.add(tail, visible_from=0)
    after = buffer.sampler_at(0).gather(online)
    for name, value in vars(before).items():
        assert torch.equal(value, getattr(after, name)), name
    assert before.valid.eq(1).all() and before.action_mask.eq(1).all()
    # The finished episode now also has the windows that reach its last step: clamped there, as offline.
    last = buffer.rows - 1
    batch = buffer.sampler_at(0).gather(torch.tensor([[last - 1, last, last]]))
    assert torch.equal(batch.next_observations[0], buffer.field("observations")[last])
    assert batch.valid[0] == 1 and batch.bootstrap_mask[0] == buffer.field("masks")[last]


def test_offline_only_buffer_draws_the_offline_batches_bit_for_bit():
    offline = offline_sampler()
    buffer = ReplayBuffer(offline, planned_rows=10)
    for index in range(5):
        a = offline.sample(64, torch.Generator().manual_seed(index))
        b = buffer.sampler_at(index).sample(64, torch.Generator().manual_seed(index))
        for name, value in vars(a).items():
            assert torch.equal(value, getattr(b, name)), name


def test_buffer_grows_by_what_is_added_never_past_the_plan():
    offline = offline_sampler()
    buffer = ReplayBuffer(offline, planned_rows=10_000)
    assert buffer.capacity == buffer.offline_rows == 7  # the offline tensors themselves, nothing preallocated
    assert buffer.field("observations").data_ptr() == offline.observations.data_ptr()
    buffer.add(rows(0, 5, False), visible_from=0)
    assert buffer.online_rows == 5 and buffer.capacity == 7 + MIN_GROWTH
    for _ in range(3):
        buffer.add(rows(0, MIN_GROWTH, False), visible_from=0)
    assert buffer.online_rows == 5 + 3 * MIN_GROWTH
    assert buffer.capacity - 7 <= 2 * buffer.online_rows
    small = ReplayBuffer(offline, planned_rows=20)
    small.add(rows(0, 5, False), visible_from=0)
    assert small.capacity == 7 + 20


def test_a_batch_sees_the_rows_committed_for_its_index():
    buffer = ReplayBuffer(offline_sampler(), planned_rows=100)
    buffer.add(rows(300, 4, False), visible_from=5)
    assert buffer.sampler_at(4).observations.shape[0] == 7
    assert buffer.sampler_at(5).observations.shape[0] == 11
    buffer.forget_before(6)
    assert buffer.visible_rows(6) == 11 and len(buffer.commits()) == 1


def test_end_episode_closes_the_episode_in_progress_with_its_mask_kept():
    buffer = ReplayBuffer(offline_sampler(), planned_rows=100)
    buffer.add(rows(300, 4, False), visible_from=0)
    buffer.end_episode(visible_from=0)
    assert buffer.field("terminals")[-1] == 1 and buffer.field("masks")[-1] == 1
    assert buffer.sampler_at(0).episode_counts.tolist()[-1] == 3


def test_segments_round_trip_and_never_overwrite_other_content(tmp_path):
    a, b = rows(0, 6, False), rows(50, 6, False)
    name_a, name_b = write_segment(tmp_path, 0, a), write_segment(tmp_path, 0, b)
    assert name_a != name_b and name_a.startswith("rows0000000000-0000000006-")
    back = read_segments(tmp_path, [name_a], 4)
    assert all(np.array_equal(back[k], a[k][:4]) for k in a)
    assert not list(tmp_path.glob(".*.tmp"))

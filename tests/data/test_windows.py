"""The (h+1)-step window sampler on a handcrafted dataset."""

from __future__ import annotations

import torch

from rql_lightning.data.windows import WindowSampler, windows_to_batch


def handcrafted(chunk_size: int = 3) -> WindowSampler:
    """Two episodes: steps 0-3 (terminal at 3) and 4-9 (terminal at 9); obs = action = reward = index."""
    n = 10
    idx = torch.arange(n, dtype=torch.float32)
    terminals = torch.zeros(n)
    terminals[[3, 9]] = 1
    masks = torch.ones(n)
    masks[7] = 0  # task completed at step 7
    return WindowSampler(idx[:, None], idx[:, None], idx.clone(), terminals, masks, chunk_size)


def test_window_indices_are_clamped_to_the_episode_end_and_never_start_on_it():
    s = handcrafted()
    idx = s.sample_indices(4000, torch.Generator().manual_seed(0))
    starts = idx[:, 0]
    assert set(starts.tolist()) == {0, 1, 2, 4, 5, 6, 7, 8}  # never 3 or 9 (episode ends)
    ends = torch.where(starts < 4, 3, 9)
    assert (idx <= ends[:, None]).all()
    expected = torch.minimum(starts[:, None] + torch.arange(4), ends[:, None])
    assert torch.equal(idx, expected)


def test_episodes_are_chosen_uniformly_then_starts_uniformly():
    s = handcrafted()
    starts = s.sample_indices(20000, torch.Generator().manual_seed(1))[:, 0]
    first_episode = (starts < 4).float().mean().item()
    assert abs(first_episode - 0.5) < 0.02  # 3 starts vs 5 starts, yet half the windows each


def test_rewards_zeroed_after_episode_end_valid_and_bootstrap_mask():
    s = handcrafted()
    batch = s.gather(torch.tensor([[0, 1, 2, 3], [2, 3, 3, 3], [1, 2, 3, 3], [5, 6, 7, 8]]))
    # window [2,3,3,3]: r2, r3, then r3 repeated past the end -> zeroed.
    assert batch.rewards.tolist() == [[0, 1, 2], [2, 3, 0], [1, 2, 3], [5, 6, 7]]
    # valid iff at most one terminal among steps t..t+h-1.
    assert batch.valid.tolist() == [1, 0, 1, 1]
    # bootstrap mask = masks[t+h-1]: 0 only for the window whose step t+h-1 = 7 completed the task.
    assert batch.bootstrap_mask.tolist() == [1, 1, 1, 0]
    assert batch.next_observations.squeeze(-1).tolist() == [3, 3, 3, 8]
    assert batch.action_chunks.tolist() == [[0, 1, 2], [2, 3, 3], [1, 2, 3], [5, 6, 7]]
    assert batch.action_mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 1]]


def test_action_mask_repeats_over_action_dims():
    obs = torch.zeros(1, 3, 1)
    actions = torch.zeros(1, 3, 2)
    terminals = torch.tensor([[0.0, 1.0, 1.0]])
    batch = windows_to_batch(obs, actions, torch.ones(1, 3), terminals, torch.ones(1, 3))
    assert batch.action_mask.tolist() == [[1, 1, 1, 1]]
    terminals = torch.tensor([[1.0, 1.0, 1.0]])
    batch = windows_to_batch(obs, actions, torch.ones(1, 3), terminals, torch.ones(1, 3))
    assert batch.action_mask.tolist() == [[1, 1, 0, 0]]
    assert batch.valid.tolist() == [0]


def test_sampling_is_seeded():
    s = handcrafted()
    a = s.sample(64, torch.Generator().manual_seed(3))
    b = s.sample(64, torch.Generator().manual_seed(3))
    assert torch.equal(a.action_chunks, b.action_chunks)

"""Vectorised chunked OGBench rollouts (rql_lightning.envs): names, envs, seeds, sharding, reuse, frames."""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rql_lightning.envs import (
    SPARES_KEPT,
    ChunkStepWrapper,
    EvalEnvs,
    evaluate_policy,
    give_back,
    make_eval_env,
    max_episode_steps,
    resolve_env_id,
    take_env,
    worker_envs,
)
from tests.envs.scripted import ACT_DIM, DATASET, ENV, T_MAX, CountingZeroPolicy, scripted_policy
from tests.rendering import gl_env, require_gl

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*precision lowered by casting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*DISPLAY environment variable is missing"),
]


def test_env_names_resolve_without_building():
    assert resolve_env_id(ENV) == (ENV, False)
    assert resolve_env_id(DATASET) == (ENV, True)
    assert max_episode_steps(ENV) == max_episode_steps(DATASET) == T_MAX
    for bad in ["cube-single-v0", "cube-single-play-v0", "cube-single-play-singletask-task9-v0", "nope"]:
        with pytest.raises(ValueError, match="single-task") as err:
            resolve_env_id(bad)
        assert "\n" not in str(err.value) and ENV in str(err.value)
    with pytest.raises(ValueError):
        make_eval_env("cube-single-v0")


@pytest.mark.slow
def test_make_eval_env_from_id_and_dataset_name():
    for name in (ENV, DATASET):
        env = make_eval_env(name)
        try:
            assert env.spec.id == ENV and env.spec.max_episode_steps == T_MAX
            obs, _ = env.reset(seed=0)
            assert obs.shape == env.observation_space.shape == (28,)
            assert env.action_space.shape == (ACT_DIM,)
        finally:
            env.close()


@pytest.mark.slow
def test_zero_policy_times_out_and_chunks_are_open_loop_single_env():
    h = 7
    policy = CountingZeroPolicy(h)
    (res,) = evaluate_policy(policy, [ENV], num_episodes=3, num_envs=1, seeds=[0], chunk_size=h)
    assert res.num_episodes == 3 and res.episode_returns.shape == (3,)
    assert 0.0 <= res.success_rate <= 1.0 and res.success_rate == 0.0
    np.testing.assert_array_equal(res.episode_lengths, [T_MAX] * 3)
    np.testing.assert_array_equal(res.episode_returns, [-T_MAX] * 3)  # reward -1 per step while unsolved
    assert res.mean_return == -T_MAX and res.videos == []
    # one call per chunk: ceil(T/h) per episode, episodes run one after another on the single env
    assert policy.batch_sizes == [1] * (3 * math.ceil(T_MAX / h))


@pytest.mark.slow
def test_zero_policy_two_async_envs_batch_the_policy_call():
    h = 7
    policy = CountingZeroPolicy(h)
    (res,) = evaluate_policy(policy, [ENV], num_episodes=4, num_envs=2, seeds=[0], chunk_size=h)
    np.testing.assert_array_equal(res.episode_lengths, [T_MAX] * 4)
    # two waves of two lockstep episodes: ceil(T/h) batched calls per wave
    assert policy.batch_sizes == [2] * (2 * math.ceil(T_MAX / h))


@pytest.mark.slow
def test_worker_envs_fork_the_envs_taken_here_and_keep_them_for_the_next():
    """The workers run forked copies of the envs taken here, which this process then keeps for the next taker, at
    most SPARES_KEPT of them (~200 MB each): a second vector env of the same builds none."""

    def envs_here() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, ChunkStepWrapper)}

    names, kwargs, kept = [ENV, ENV, ENV.replace("task1", "task2")], {"max_episode_steps": 5}, []
    for _ in range(2):
        envs = worker_envs(names, kwargs, chunk_size=2)
        try:
            kept.append(envs_here())
            obs, _ = envs.reset(seed=[0, 0, 0])
            np.testing.assert_array_equal(obs[0], obs[1])  # the same env and seed in two workers
            *_, truncated, info = envs.step(np.zeros((3, 2, ACT_DIM), np.float32))
            assert info["length"].tolist() == [2, 2, 2] and not truncated.any()
        finally:
            envs.close()
    assert len(kept[0]) == SPARES_KEPT == 2 and kept[1] == kept[0]  # the two tasks' envs, built once
    taken = take_env(ENV, kwargs, chunk_size=2)
    assert id(taken) in kept[0] and envs_here() == kept[0]
    give_back(taken)


@pytest.mark.slow
def test_scripted_policy_terminates_at_success_and_is_reproducible_across_num_envs():
    kw = dict(num_episodes=5, seeds=[3], chunk_size=1)
    (one,) = evaluate_policy(scripted_policy, [ENV], num_envs=1, **kw)
    (two,) = evaluate_policy(scripted_policy, [ENV], num_envs=2, **kw)
    (again,) = evaluate_policy(scripted_policy, [ENV], num_envs=1, **kw)
    # OGBench single-task envs terminate at success: every episode ends early with info['success'] True
    assert one.success_rate == 1.0 and one.episode_successes.all()
    assert (one.episode_lengths < T_MAX).all()
    np.testing.assert_array_equal(one.episode_returns, -(one.episode_lengths - 1))  # reward 0 at success
    assert len(set(one.episode_lengths.tolist())) > 1  # lengths differ, so the async envs desynchronise
    for other in (two, again):  # episode k is seeded seed + k whichever env runs it
        np.testing.assert_array_equal(other.episode_lengths, one.episode_lengths)
        np.testing.assert_array_equal(other.episode_returns, one.episode_returns)
        np.testing.assert_array_equal(other.episode_successes, one.episode_successes)
    (shifted,) = evaluate_policy(scripted_policy, [ENV], num_envs=1, **{**kw, "seeds": [4]})
    np.testing.assert_array_equal(shifted.episode_lengths[:4], one.episode_lengths[1:])
    # DDP sharding: rank r of 2 runs episodes r, r + 2, ... with unchanged seeds; the union is `one`
    for rank, ids in ((0, [0, 2, 4]), (1, [1, 3])):
        (part,) = evaluate_policy(scripted_policy, [ENV], num_envs=1, rank=rank, world_size=2, **kw)
        np.testing.assert_array_equal(part.episode_ids, ids)
        np.testing.assert_array_equal(part.episode_lengths, one.episode_lengths[ids])
        np.testing.assert_array_equal(part.episode_returns, one.episode_returns[ids])
    (empty,) = evaluate_policy(scripted_policy, [ENV], num_envs=1, rank=5, world_size=6, **kw)  # no share: no env
    assert empty.num_episodes == 0 and math.isnan(empty.success_rate)


@pytest.mark.slow
def test_a_kept_vector_env_gives_the_results_of_a_fresh_one():
    """Reusing the env across evaluations (as the callback does) changes no episode: each is reset with its seed."""
    kw = dict(num_episodes=5, seeds=[3], chunk_size=1, num_envs=2)
    (fresh,) = evaluate_policy(scripted_policy, [ENV], **kw)
    with EvalEnvs() as envs:
        (first,) = evaluate_policy(scripted_policy, [ENV], envs=envs, **kw)
        (again,) = evaluate_policy(scripted_policy, [ENV], envs=envs, **kw)
        assert envs.builds == 1 and envs.alive  # built once, still up for the next evaluation
        (other,) = evaluate_policy(scripted_policy, [ENV], envs=envs, **{**kw, "num_envs": 1})
        assert envs.builds == 2  # a different request rebuilds it
    assert not envs.alive
    for res in (first, again, other):
        np.testing.assert_array_equal(res.episode_lengths, fresh.episode_lengths)
        np.testing.assert_array_equal(res.episode_returns, fresh.episode_returns)
        np.testing.assert_array_equal(res.episode_successes, fresh.episode_successes)


@pytest.mark.slow
def test_a_closed_holders_env_goes_to_the_next_holder_unless_it_rendered(monkeypatch):
    """A sweep's next job, or rql-eval after training, asks for the env the last holder closed: it is handed on, not
    built again, and gives the episodes a new one gives; one that rendered is closed (its GL context is no fork's)."""
    import rql_lightning.envs as envs_module

    request = ([ENV], 1, {"max_episode_steps": 40}, 1)
    kw = dict(num_episodes=3, seeds=[5], chunk_size=1, num_envs=1, env_kwargs={"max_episode_steps": 40})
    with EvalEnvs() as first:
        kept = first.get(*request).envs[0]
    with EvalEnvs() as second:
        assert second.get(*request).envs[0] is kept
        (handed_on,) = evaluate_policy(scripted_policy, [ENV], envs=second, **kw)
        kept.rendered = True  # as after a recorded episode
    with EvalEnvs() as third:
        assert third.get(*request).envs[0] is not kept
    monkeypatch.setattr(envs_module, "SPARES_KEPT", 0)  # nothing handed on: a new env
    (new,) = evaluate_policy(scripted_policy, [ENV], **kw)
    assert new.episode_successes.any()
    for field in ("episode_successes", "episode_returns", "episode_lengths"):
        np.testing.assert_array_equal(getattr(handed_on, field), getattr(new, field))


@pytest.mark.slow
def test_replicas_of_two_tasks_step_in_lock_step_each_as_its_own_run():
    """Two tasks x two seeds in one vector env: one policy call per round for all four, each replica's episodes
    those of its run alone, in as many rounds as the longest run alone takes."""
    task2 = ENV.replace("task1", "task2")
    names, seeds = [ENV, ENV, task2, task2], [3, 4, 3, 4]
    # one env per replica: the four step in one (async) vector env, each alone in its own (sync) one
    kw = dict(num_episodes=3, num_envs=1, chunk_size=1, env_kwargs=dict(max_episode_steps=60))
    sizes = []

    def counting(obs):
        sizes.append(len(obs))
        return scripted_policy(obs)

    together = evaluate_policy(counting, names, seeds=seeds, **kw)
    calls, sizes[:] = len(sizes), []
    alone_calls = []
    for name, seed, got in zip(names, seeds, together, strict=True):
        (alone,) = evaluate_policy(counting, [name], seeds=[seed], **kw)
        alone_calls.append(len(sizes))
        sizes.clear()
        np.testing.assert_array_equal(got.episode_ids, [0, 1, 2])
        np.testing.assert_array_equal(got.episode_successes, alone.episode_successes)
        np.testing.assert_array_equal(got.episode_returns, alone.episode_returns)
        np.testing.assert_array_equal(got.episode_lengths, alone.episode_lengths)
    assert together[0].episode_successes.any() and not together[2].episode_successes.any()  # two different tasks
    assert calls == max(alone_calls) < max(alone_calls[:2]) + max(alone_calls[2:])  # not one task after the other


def test_policy_receives_episode_ids_and_chunk_indices():
    calls = []

    def policy(obs, replicas, episodes, chunks):
        calls.append((replicas.tolist(), episodes.tolist(), chunks.tolist()))
        return np.zeros((len(obs), 2, ACT_DIM))

    kw = dict(env_kwargs=dict(max_episode_steps=3), episode_info=True)
    evaluate_policy(policy, [ENV], num_episodes=3, num_envs=1, seeds=[0], chunk_size=2, rank=1, world_size=2, **kw)
    assert calls == [([0], [1], [0]), ([0], [1], [1])]  # rank 1 of 2 runs episode 1 only: chunks at steps 0 and 2
    calls.clear()  # two replicas of 3 episodes: rank 1 of 2 runs combined episodes 1, 3, 5 = (0, 1), (1, 0), (1, 2)
    evaluate_policy(
        policy, [ENV] * 2, num_episodes=3, num_envs=1, seeds=[0, 9], chunk_size=2, rank=1, world_size=2, **kw
    )
    assert calls == [([0, 1], [1, 0], [0, 0]), ([0, 1], [1, 0], [1, 1]), ([1], [2], [0]), ([1], [2], [1])]


@pytest.mark.slow
def test_bad_policy_output_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        evaluate_policy(lambda o: np.zeros((len(o), 2, ACT_DIM)), [ENV], 1, 1, [0], chunk_size=3)
    envs = EvalEnvs()
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_policy(lambda o: np.full((len(o), 3, ACT_DIM), np.nan), [ENV], 1, 1, [0], chunk_size=3, envs=envs)
    assert envs.builds == 1 and not envs.alive  # a failed rollout never leaves its env for the next one


@pytest.mark.slow
def test_render_frames_with_egl(tmp_path):
    """Runs in a fresh interpreter because MUJOCO_GL must be set before MuJoCo is imported."""
    require_gl("egl")
    code = textwrap.dedent(
        f"""
        import numpy as np
        from rql_lightning.envs import evaluate_policy
        (res,) = evaluate_policy(lambda o: np.zeros((len(o), 2, 5)), [{ENV!r}], 2, 1, [0], 2, video_episodes=1,
                                 env_kwargs=dict(max_episode_steps=4, width=32, height=24))
        assert res.episode_lengths.tolist() == [4, 4]
        assert len(res.videos) == 1, len(res.videos)
        f = res.videos[0]
        assert f.shape == (5, 24, 32, 3) and f.dtype == np.uint8 and f.max() > 0, (f.shape, f.dtype)
        print("RENDER_OK")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], env=gl_env("egl"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "RENDER_OK" in proc.stdout, proc.stderr[-3000:]

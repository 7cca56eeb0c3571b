"""Local play-data generation: OGBench's file format, its loader's acceptance, caching, workers, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from rql_lightning.cli import data as cli
from rql_lightning.data.generate import (
    DEFAULT_EPISODE_STEPS,
    SUPPORTED_DATASETS,
    EpisodeCollector,
    ensure_play_dataset,
    generate_play_dataset,
)
from rql_lightning.naming import DATA_DIR_ENV

CUBE_SINGLE = "cube-single-play-v0"
CUBE_SINGLE_OB_DIM = 28
CUBE_SINGLE_QPOS_DIM = 21  # 6 arm + 8 gripper joints + 7 for the cube's free joint
ACTION_DIM = 5
TINY_STEPS = 20  # episode length for tests that need the machinery, not OGBench's 1001-step episodes


TRAIN_EPISODES = 3  # the session's dataset: 3000 transitions round up to 3 full-length episodes of 1001


@pytest.fixture
def cube_single(cube_single_dataset):
    """The session's generated dataset (tests/conftest.py), read only here: 3 train episodes and one val one."""
    return cube_single_dataset


def load(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.slow
def test_format_matches_ogbench(cube_single):
    train = load(cube_single)
    val = load(cube_single.with_name(f"{CUBE_SINGLE}-val.npz"))
    assert set(train) == {"observations", "actions", "terminals", "qpos", "qvel"}
    n = TRAIN_EPISODES * DEFAULT_EPISODE_STEPS
    assert train["observations"].shape == (n, CUBE_SINGLE_OB_DIM)
    assert train["actions"].shape == (n, ACTION_DIM)
    assert train["qpos"].shape == (n, CUBE_SINGLE_QPOS_DIM)
    for key in ("observations", "actions", "qpos", "qvel"):
        assert train[key].dtype == np.float32, key
    assert train["terminals"].dtype == bool
    np.testing.assert_array_equal(np.flatnonzero(train["terminals"]), [1000, 2001, 3002])
    assert np.abs(train["actions"]).max() <= 1.0
    assert len(val["terminals"]) == DEFAULT_EPISODE_STEPS and val["terminals"][-1]
    # The arm moves and the oracle really handles the cube (its position changes within an episode).
    assert np.ptp(train["qpos"][:, 14:17], axis=0).max() > 0.01


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*precision lowered")
def test_ogbench_loader_relabels(cube_single):
    import ogbench

    env, train, val = ogbench.make_env_and_datasets(
        "cube-single-play-singletask-task1-v0", dataset_path=str(cube_single)
    )
    n_valid = TRAIN_EPISODES * (DEFAULT_EPISODE_STEPS - 1)  # the loader drops each episode's last state
    assert train["observations"].shape == (n_valid, CUBE_SINGLE_OB_DIM)
    assert train["rewards"].shape == train["masks"].shape == (n_valid,)
    assert set(np.unique(train["masks"])) <= {0.0, 1.0}
    assert "rewards" in val and "masks" in val
    env.close()


@pytest.mark.slow
def test_cache_returns_existing_file(cube_single):
    mtime = cube_single.stat().st_mtime_ns
    assert ensure_play_dataset(CUBE_SINGLE, cube_single.parent, num_transitions=3000) == cube_single
    assert cube_single.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_two_workers_match_one_worker(tmp_path):
    kwargs = dict(num_transitions=4 * TINY_STEPS, seed=3, progress=False, max_episode_steps=TINY_STEPS)
    one = load(generate_play_dataset(CUBE_SINGLE, tmp_path / "a" / "d.npz", num_workers=1, **kwargs))
    two = load(generate_play_dataset(CUBE_SINGLE, tmp_path / "b" / "d.npz", num_workers=2, **kwargs))
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert int(two["terminals"].sum()) == 4
    other = load(generate_play_dataset(CUBE_SINGLE, tmp_path / "c" / "d.npz", **{**kwargs, "seed": 4}))
    assert not np.array_equal(one["actions"], other["actions"])
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files behind


@pytest.mark.slow
def test_shards_layout_and_resume(tmp_path):
    out = tmp_path / CUBE_SINGLE
    generate_play_dataset(CUBE_SINGLE, out, 3 * TINY_STEPS, progress=False, num_shards=2, max_episode_steps=TINY_STEPS)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{CUBE_SINGLE}-000-val.npz", f"{CUBE_SINGLE}-000.npz"] + [
        f"{CUBE_SINGLE}-001-val.npz",
        f"{CUBE_SINGLE}-001.npz",
    ]
    episodes = [int(load(out / f"{CUBE_SINGLE}-00{i}.npz")["terminals"].sum()) for i in range(2)]
    assert episodes == [2, 1]
    kept = out / f"{CUBE_SINGLE}-000.npz"
    mtime = kept.stat().st_mtime_ns
    (out / f"{CUBE_SINGLE}-001.npz").unlink()
    generate_play_dataset(CUBE_SINGLE, out, 3 * TINY_STEPS, progress=False, num_shards=2, max_episode_steps=TINY_STEPS)
    assert kept.stat().st_mtime_ns == mtime
    assert (out / f"{CUBE_SINGLE}-001.npz").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in SUPPORTED_DATASETS if n != CUBE_SINGLE])
def test_every_environment_runs(tmp_path, name):
    path = generate_play_dataset(
        name, tmp_path / f"{name}.npz", TINY_STEPS, progress=False, max_episode_steps=TINY_STEPS
    )
    data = load(path)
    assert data["observations"].shape[0] == TINY_STEPS
    assert data["observations"].shape[1] > CUBE_SINGLE_OB_DIM
    assert data["actions"].shape == (TINY_STEPS, ACTION_DIM)
    assert data["terminals"][-1]
    has_buttons = not name.startswith("cube")
    assert ("button_states" in data) == has_buttons
    if has_buttons:
        assert data["button_states"].dtype == np.int64 and data["button_states"].ndim == 2


def test_unknown_name_raises(tmp_path):
    with pytest.raises(ValueError, match="cube-single-play-v0"):
        generate_play_dataset("antmaze-large-navigate-v0", tmp_path / "x.npz", 10)
    with pytest.raises(ValueError, match="supported"):
        ensure_play_dataset("nope-play-v0", tmp_path, 10)
    assert not list(tmp_path.iterdir())


def test_scene_health_check():
    collector = object.__new__(EpisodeCollector)
    collector._env_name = "scene-v0"
    qpos = np.zeros((3, 30))
    qpos[:, 14:17] = [0.4, 0.0, 0.02]
    assert collector._is_healthy(qpos)
    too_far_right = qpos.copy()
    too_far_right[1, 15] = 0.3
    assert not collector._is_healthy(too_far_right)
    left_in_drawer = qpos.copy()
    left_in_drawer[1, 15:17] = [-0.32, 0.07]
    assert collector._is_healthy(left_in_drawer)
    left_on_table = qpos.copy()
    left_on_table[1, 15:17] = [-0.32, 0.02]
    assert not collector._is_healthy(left_on_table)


@pytest.mark.slow
def test_cli_generate_and_info(tmp_path, capsys, cube_single):
    assert (
        cli.main(["generate", CUBE_SINGLE, "--num-transitions", "10", "--data-dir", str(tmp_path), "--no-progress"])
        == 0
    )
    assert str(tmp_path / f"{CUBE_SINGLE}.npz") in capsys.readouterr().out
    assert len(load(tmp_path / f"{CUBE_SINGLE}-val.npz")["terminals"]) == DEFAULT_EPISODE_STEPS

    assert cli.main(["info", CUBE_SINGLE, "--data-dir", str(cube_single.parent), "--task", "1"]) == 0
    out = capsys.readouterr().out
    assert f"transitions: {TRAIN_EPISODES * DEFAULT_EPISODE_STEPS}" in out
    assert f"episodes:    {TRAIN_EPISODES}" in out
    assert f"obs dim:     {CUBE_SINGLE_OB_DIM}" in out
    assert "success rate" in out and "reward range" in out


def test_cli_info_missing_file_is_one_line(tmp_path, monkeypatch, capsys):
    # docs/errors.md row 56
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        cli.main(["info", CUBE_SINGLE])
    assert exc.value.code == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message
    assert message.startswith("error: ") and f"no dataset at {tmp_path / CUBE_SINGLE}.npz; " in message, message
    assert f"rql-data generate {CUBE_SINGLE}" in message


@pytest.mark.slow
def test_worker_failure_raises_instead_of_hanging():
    from concurrent.futures.process import BrokenProcessPool

    from rql_lightning.data.generate import EpisodeSpec, collect_in_pool

    episodes = collect_in_pool("not-a-dataset", 0, TINY_STEPS, [EpisodeSpec(0, 0)], workers=1)
    with pytest.raises(BrokenProcessPool):
        next(episodes)

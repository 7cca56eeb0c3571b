"""Minari datasets: real datasets written to a temporary Minari root, converted, validated and trained on."""

from __future__ import annotations

import gymnasium
import lightning as L
import numpy as np
import pytest
from hydra.utils import instantiate

from rql_lightning.cli import data as data_cli
from rql_lightning.config import compose_config
from rql_lightning.data.dataset_checks import ActionRangeError, DatasetNotFoundError, NonFiniteDataError
from rql_lightning.data.minari_datamodule import MINARI_ROOT_ENV, MinariDataModule, write_play_dataset_as_minari
from rql_lightning.data.ogbench_datamodule import load_singletask
from rql_lightning.modules.rql import RQLModule
from rql_lightning.training import train

NAME = "cube-single-play-singletask-task2-v0"  # task 2: completed in the fixture's episodes
PLAY_ID = "rql/cube-single-play-task2-v0"


@pytest.fixture(scope="module")
def root(tmp_path_factory, cube_single_dataset):
    """A Minari root holding the generated cube-single play data, relabelled for task 2."""
    root = tmp_path_factory.mktemp("minari")
    write_play_dataset_as_minari(cube_single_dataset, NAME, PLAY_ID, root)
    return root


@pytest.fixture
def minari_env(root, monkeypatch):
    monkeypatch.setenv(MINARI_ROOT_ENV, str(root))
    return root


def write_episodes(dataset_id: str, episodes: list[dict], obs_dim: int = 3, action_dim: int = 2):
    """A Minari dataset from raw per-episode arrays (no environment: spaces given)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [EpisodeBuffer(id=i, **ep) for i, ep in enumerate(episodes)]
    with pytest.warns(UserWarning):  # Minari asks for author, description, ...
        return minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
            action_space=gymnasium.spaces.Box(-1, 1, (action_dim,), np.float32),
        )


def episode(t: int, terminated: bool, rng, scale: float = 1.0) -> dict:
    terminations = np.zeros(t, bool)
    terminations[-1] = terminated
    return dict(
        observations=rng.normal(size=(t + 1, 3)).astype(np.float32),
        actions=(scale * rng.uniform(-1, 1, (t, 2))).astype(np.float32),
        rewards=rng.normal(size=t),
        terminations=terminations,
        truncations=~terminations & (np.arange(t) == t - 1),
    )


def test_play_data_round_trips_to_the_ogbench_arrays(minari_env, cube_single_dataset):
    """Written from an OGBench file and read back through MINARI_DATASETS_PATH: the OGBench path's arrays."""
    dm = MinariDataModule(PLAY_ID, chunk_size=5, batch_size=32)
    dm.prepare_data()
    ours = dm.load_arrays()
    theirs, _ = load_singletask(NAME, cube_single_dataset)
    for key in ("observations", "actions", "rewards", "terminals", "masks"):
        np.testing.assert_array_equal(getattr(ours, key), getattr(theirs, key), err_msg=key)
    assert (ours.masks == 0).any()  # the task is completed somewhere: terminations carry the success


def test_stored_episodes_keep_the_final_observation(minari_env, cube_single_dataset):
    import minari

    raw = np.load(cube_single_dataset)
    ds = minari.load_dataset(PLAY_ID)
    first = next(ds.iterate_episodes())
    end = int(np.flatnonzero(raw["terminals"])[0])  # the file's first terminal row: the final observation
    assert len(first.observations) == len(first.actions) + 1 == end + 1
    np.testing.assert_array_equal(first.observations[-1], raw["observations"][end])
    assert first.truncations[-1] and not first.truncations[:-1].any()


def test_trains_a_few_steps_with_rql(minari_env):
    dm = MinariDataModule(PLAY_ID, chunk_size=5, batch_size=32)
    dm.prepare_data()
    dm.setup("fit")
    model = RQLModule(
        obs_dim=dm.obs_dim, action_dim=dm.action_dim, chunk_size=5, flow_steps=2, num_critics=2,
        actor_hidden_dims=[32, 32], critic_hidden_dims=[32, 32], log_every=1,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 5
    assert all(np.isfinite(v.item()) for v in trainer.callback_metrics.values())


def test_evaluation_env_is_recovered(minari_env):
    from rql_lightning.envs import make_eval_env

    dm = MinariDataModule(PLAY_ID, chunk_size=5)
    assert dm.eval_env_gym_id == "cube-single-singletask-task2-v0"
    assert dm.eval_env_name == f"minari:{minari_env.absolute() / PLAY_ID}"
    for env in (dm.eval_env(), make_eval_env(dm.eval_env_name)):
        try:
            assert env.observation_space.shape == (28,) and env.action_space.shape == (5,)
            assert env.spec.id == "cube-single-singletask-task2-v0"
        finally:
            env.close()


def test_training_on_minari_evaluates_in_the_recovered_env(minari_env, tmp_path):
    """Through the CLI's train(): the evaluation callback asks the datamodule for its env."""
    cfg = compose_config(
        [
            f"paths.output_dir={tmp_path}",
            "data=minari",
            f"data.dataset_id={PLAY_ID}",
            "data.batch_size=16",
            "model.num_critics=2",
            "model.actor_hidden_dims=[16]",
            "model.critic_hidden_dims=[16]",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
            "callbacks.evaluation.num_episodes=1",
            "callbacks.evaluation.num_envs=1",
            "+callbacks.evaluation.env_kwargs.max_episode_steps=20",
        ]
    )
    summary = train(cfg)
    assert 0.0 <= summary["success_rate"] <= 1.0
    # The env it evaluated in is the one the dataset recorded (task 2), not the config's default task 1.
    import json

    from rql_lightning.envs import make_eval_env

    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["eval_env"] == f"minari:{minari_env.absolute() / PLAY_ID}"
    assert [point["step"] for point in record["curve"]] == [2]
    env = make_eval_env(record["eval_env"])
    try:
        assert env.spec.id == "cube-single-singletask-task2-v0"
    finally:
        env.close()


def test_hydra_data_minari(minari_env, tmp_path):
    cfg = compose_config([f"paths.output_dir={tmp_path}", "data=minari", f"data.dataset_id={PLAY_ID}"])
    dm = instantiate(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.obs_dim, dm.action_dim, dm.chunk_size) == (28, 5, 5)


def test_episodes_become_transitions_with_masks_from_terminations(tmp_path, monkeypatch):
    monkeypatch.setenv(MINARI_ROOT_ENV, str(tmp_path))
    rng = np.random.default_rng(0)
    eps = [episode(3, True, rng), episode(4, False, rng)]
    write_episodes("test/two-v0", eps)
    arrays = MinariDataModule("test/two-v0", chunk_size=2, batch_size=4).load_arrays()
    np.testing.assert_array_equal(arrays.terminals, [0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(arrays.masks, [1, 1, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(arrays.observations, np.concatenate([e["observations"][:-1] for e in eps]))
    np.testing.assert_allclose(arrays.rewards, np.concatenate([e["rewards"] for e in eps]), rtol=1e-6)


def test_bad_minari_data_is_reported_with_its_id(tmp_path, monkeypatch):
    # docs/errors.md row 54
    monkeypatch.setenv(MINARI_ROOT_ENV, str(tmp_path))
    rng = np.random.default_rng(1)
    nan = episode(5, False, rng)
    nan["observations"][2, 1] = np.nan
    write_episodes("test/nan-v0", [episode(5, True, rng), nan])
    with pytest.raises(NonFiniteDataError, match="Minari dataset test/nan-v0"):
        MinariDataModule("test/nan-v0", chunk_size=2, batch_size=4).setup("fit")
    write_episodes("test/scale-v0", [episode(5, True, rng, scale=3.0)])
    with pytest.raises(ActionRangeError, match="test/scale-v0"):
        MinariDataModule("test/scale-v0", chunk_size=2, batch_size=4).setup("fit")


def test_missing_dataset_names_the_root_and_the_commands(tmp_path):
    # docs/errors.md row 53
    dm = MinariDataModule("nope/missing-v0", chunk_size=2, data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message and f"is not in {tmp_path} (data.data_dir, else $MINARI_DATASETS_PATH" in message
    assert "minari download nope/missing-v0" in message and "rql-data generate" in message


@pytest.mark.slow
def test_cli_generates_a_minari_dataset_and_summarises_it(tmp_path, capsys):
    args = ["generate", "cube-single-play-v0", "--format", "minari", "--task", "2", "--num-transitions", "10"]
    assert data_cli.main([*args, "--data-dir", str(tmp_path), "--no-progress", "--val-fraction", "0"]) == 0
    out = capsys.readouterr().out
    assert "rql/cube-single-play-task2-v0" in out and "data=minari" in out
    assert data_cli.main(["info", "rql/cube-single-play-task2-v0", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "transitions: 1000" in out and "eval env:    cube-single-singletask-task2-v0" in out


def test_dims_and_identity_come_from_the_dataset_without_loading_episodes(minari_env, tmp_path, monkeypatch):
    dm = MinariDataModule(PLAY_ID, chunk_size=5)
    assert dm.dims() == (28, 5)  # the dataset's spaces, before prepare_data/setup
    ident = dm.identity()
    assert ident["source"] == "minari" and ident["dataset"] == PLAY_ID and ident["size_bytes"] > 0
    assert ident["key"] == f"minari:{PLAY_ID}#{ident['fingerprint']}"
    assert MinariDataModule(PLAY_ID, chunk_size=5).identity() == ident  # the same data, the same key
    monkeypatch.setenv(MINARI_ROOT_ENV, str(tmp_path))
    write_episodes("test/other-v0", [episode(5, True, np.random.default_rng(2))])
    other = MinariDataModule("test/other-v0", chunk_size=2).identity()
    assert other["key"] != ident["key"] and other["fingerprint"] != ident["fingerprint"]


def test_quickstart_experiment_composes_with_minari(minari_env, tmp_path):
    """experiment=quickstart sets data.generate_if_missing/generate_transitions: Minari accepts both."""
    cfg = compose_config(
        [f"paths.output_dir={tmp_path}", "experiment=quickstart", "data=minari", f"data.dataset_id={PLAY_ID}"]
    )
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, MinariDataModule) and dm.generate_if_missing
    dm.prepare_data()  # present: nothing to generate
    assert dm.dims() == (28, 5)


@pytest.mark.slow
def test_generate_if_missing_writes_an_rql_minari_id(tmp_path):
    dm = MinariDataModule(
        "rql/cube-single-play-task1-v0", chunk_size=5, batch_size=32, data_dir=str(tmp_path),
        generate_if_missing=True, generate_transitions=10, generate_workers=1,
    )  # fmt: skip
    dm.prepare_data()
    assert dm.dataset is None  # prepare_data sets no state (Lightning runs it on one rank per node)
    dm.setup("fit")
    assert dm.dims() == (28, 5) and len(dm.train_sampler.terminals) == 1000  # one 1001-step episode
    with pytest.raises(DatasetNotFoundError, match="rql-data generate"):
        other = MinariDataModule("someone/else-v0", chunk_size=5, data_dir=str(tmp_path), generate_if_missing=True)
        other.prepare_data()

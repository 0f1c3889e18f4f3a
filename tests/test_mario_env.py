"""MarioLatent-v0: spaces, check_env (Gymnasium and SB3), determinism, reward terms, VecEnv contract."""

import gymnasium as gym
import numpy as np
import pytest

import rlcreate  # noqa: F401  (registers ids)
from rlcreate.levels import corpus
from rlcreate.levels.envs import make_mario_latent, make_mario_latent_vec, segment_features
from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig


@pytest.fixture(scope="module")
def tiny_gen():
    import torch

    torch.manual_seed(0)
    return LatentLevelGenerator.from_module(LevelVAE(VAEConfig(latent_dim=8, hidden=16)))


def test_gymnasium_and_sb3_check_env(tiny_gen):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = make_mario_latent(n_segments=3, generator=tiny_gen)
    gym_check(env, skip_render_check=True)
    sb3_check(make_mario_latent(n_segments=3, generator=tiny_gen), warn=True)
    assert env.action_space.shape == (8,)
    assert env.observation_space.shape[0] == 2 * 9 + 14 + 1 + 2


def test_episode_terms_and_level(tiny_gen):
    env = make_mario_latent(n_segments=3, generator=tiny_gen)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    total = 0.0
    for t in range(3):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert set(info["rewards"]) == {"playability", "novelty", "coherence", "structure", "engagement", "targets"}
        # the total is the weighted sum of the (transformed) terms
        w = {"playability": 1.0, "novelty": 1.0, "coherence": .5, "structure": .5, "engagement": 1.0, "targets": 1.0}
        assert r == pytest.approx(sum(w[k] * v for k, v in info["rewards"].items()), rel=1e-5)
        assert not trunc and term == (t == 2)
        total += r
    assert info["level"].shape == (14, 48)
    assert set(info["targets"]) == {"enemies", "gaps"}


def test_same_seed_same_levels(tiny_gen):
    def run(seed):
        env = make_mario_latent(n_segments=2, generator=tiny_gen)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(2):
            _, _, _, _, info = env.step(env.action_space.sample())
        return info["level"], info["targets"]

    a, b = run(3), run(3)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert run(4)[1] != a[1]  # targets are drawn from the env's RNG


def test_vec_env_autoreset_and_terminal_obs(tiny_gen):
    venv = make_mario_latent_vec(n_envs=4, n_segments=2, generator=tiny_gen, seed=0)
    obs = venv.reset()
    assert obs.shape == (4, venv.observation_space.shape[0])
    for _ in range(2):
        obs, rew, done, infos = venv.step(np.zeros((4, 8), np.float32))
    assert done.all() and all("terminal_observation" in i and "level" in i for i in infos)
    assert (obs[:, 2 * 9 + 14] == 0).all()  # progress back to 0 after auto-reset


def test_segment_features_equal_the_per_element_definition():
    """The histogram-based counts and the argmin ground heights give exactly the values of the
    direct definitions (np.isin per element; solid tiles stacked up by a cumulative product)."""
    from rlcreate.levels import tiles as T
    from rlcreate.levels.metrics import _column_difficulty

    rng = np.random.default_rng(0)
    windows = corpus.training_windows(16, stride=16)
    for g in (windows, windows[:, :, :2], rng.integers(0, len(T.TILES), size=(20, 14, 16)).astype(np.int8)):
        f = segment_features(g)
        groups = ((T.ENEMY,), (T.BRICK, T.QUESTION, T.QCOIN), (T.COIN,), (T.PIPE_TL,), (T.CANNON,))
        counts = [np.isin(g, ids).sum(axis=(1, 2)) for ids in groups]
        scale = np.array([4, 16, 80, 16, 4, 2, 14, 4, 1], np.float64)
        assert np.array_equal(f[:, [0, 2, 3, 4, 5]] * scale[[0, 2, 3, 4, 5]], np.stack(counts, 1))
        gi = g.astype(np.intp)
        solid = T.IS_SOLID[gi]
        heights = np.cumprod(solid[:, ::-1], axis=1).sum(axis=1)
        climb = np.zeros(heights.shape)
        ground = heights > 0
        climb[:, 1:] = np.where(ground[:, 1:] & ground[:, :-1], np.maximum(np.diff(heights, axis=1), 0), 0)
        want = (gi == T.ENEMY).sum(1) + (gi == T.CANNON).sum(1) + ~solid.any(axis=1) + 0.25 * climb
        assert np.array_equal(_column_difficulty(gi), want)
    with pytest.raises(ValueError, match="tile id 13, outside 0..12"):
        segment_features(np.full((1, 14, 2), 13))


def test_segment_features_on_corpus_are_in_unit_range():
    f = segment_features(corpus.training_windows(16, stride=16))
    assert f.shape[1] == 9 and (f >= 0).all()
    assert np.quantile(f, 0.99, axis=0).max() <= 1.0


def test_registered_id_makes_shipped_env():
    env = gym.make("rlcreate/MarioLatent-v0", n_segments=2)
    obs, _ = env.reset(seed=0)
    obs, r, *_ = env.step(env.action_space.sample())
    assert np.isfinite(r) and env.action_space.shape == (32,)

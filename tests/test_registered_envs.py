"""Every registered id builds with its shipped defaults and passes Gymnasium's and SB3's check_env."""

import gymnasium as gym
import numpy as np
import pytest

import rlcreate  # noqa: F401
from rlcreate.domains import env_ids

ENV_IDS = env_ids()

FAST_KWARGS = {
    "rlcreate/MarioLatent-v0": {"n_segments": 2},
    "rlcreate/MarioLatent-v1": {"n_segments": 2},
    "rlcreate/MarioTokens-v1": {"n_columns": 8},
    "rlcreate/TextTokens-v0": {"max_new_tokens": 4, "prompts": ["Write one line about rain."]},
}


def test_every_id_is_registered_on_import():
    assert set(ENV_IDS) <= set(gym.registry)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(ENV_IDS))
def test_registered_env_passes_check_env(env_id):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make(env_id, **FAST_KWARGS[env_id]).unwrapped
    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action = env.action_space.sample()
        if hasattr(env, "action_masks"):
            action = int(np.flatnonzero(env.action_masks())[0])
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert np.isfinite(reward) and info["rewards"]

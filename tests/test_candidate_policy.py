"""The ``candidate_scorer`` policy: one shared scorer per observed candidate, zero mean action at the
start (the env's candidate 0), equivariant to the order of candidates 1..K-1, learns to pick the
better candidate on a toy env, and refuses spaces it cannot read. A toy numpy env stands in for
MarioLatent-v1's ``candidates``."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO

from rlcreate.recipe import RecipeError
from rlcreate.sb3.algo import build_algo
from rlcreate.sb3.policies import CandidatePolicy, PolicyConfigError

K, W, C = 3, 2, 2  # candidates, entries per candidate block, context entries


class PickEnv(gym.Env):
    """One step: K candidates with a value each (block = [value, noise]); the action picks candidate
    k >= 1 if its entry is the largest and >= 0.5, else candidate 0 (MarioLatent-v1's rule); the
    reward is the picked candidate's value."""

    observation_space = spaces.Box(0.0, 1.0, (C + K * W,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (K - 1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.obs = self.np_random.uniform(0, 1, C + K * W).astype(np.float32)
        return self.obs, {}

    def step(self, a):
        best = int(np.argmax(a))
        pick = best + 1 if a[best] >= 0.5 else 0
        value = float(self.obs[C + pick * W])
        return self.obs, value, True, False, {"pick": pick}


def model(seed=0, **kw):
    return PPO(CandidatePolicy, PickEnv(), n_steps=256, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=seed,
               device="cpu", policy_kwargs={"net_arch": [32], "candidate_width": W, "log_std_init": -0.9}, **kw)


def test_untrained_mean_action_is_zero_and_candidates_share_one_scorer():
    m = model()
    obs = torch.as_tensor(np.random.default_rng(0).uniform(0, 1, (5, C + K * W)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(m.policy.get_distribution(obs).distribution.mean, torch.zeros(5, K - 1))
        m.policy.mlp_extractor.score[-1].bias.fill_(0.0)
        m.policy.mlp_extractor.score[-1].weight.normal_()  # a trained-like scorer
        mean = m.policy.get_distribution(obs).distribution.mean
        swapped = obs.clone()  # candidates 1 and 2 swap places: their entries swap
        swapped[:, C + W : C + 2 * W], swapped[:, C + 2 * W :] = obs[:, C + 2 * W :], obs[:, C + W : C + 2 * W]
        mean_swapped = m.policy.get_distribution(swapped).distribution.mean
    assert mean.abs().max() > 0 and torch.allclose(mean_swapped, mean.flip(1), atol=1e-6)


def test_ppo_learns_to_pick_the_better_candidate():
    m = model().learn(3072)
    env, picked, zero = PickEnv(), [], []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        picked.append(env.step(m.predict(obs, deterministic=True)[0])[1])
        zero.append(float(obs[C]))
    # candidate 0 alone is worth ~0.5; the best of 3 uniform values ~0.75
    assert np.mean(picked) > np.mean(zero) + 0.1


def test_spaces_it_cannot_read_are_refused():
    with pytest.raises(PolicyConfigError, match="candidate_width = 0"):
        PPO(CandidatePolicy, PickEnv(), device="cpu", policy_kwargs={"candidate_width": 0})
    with pytest.raises(PolicyConfigError, match="candidate_width = 5"):
        PPO(CandidatePolicy, PickEnv(), device="cpu", policy_kwargs={"candidate_width": 5})  # 3 x 5 > 8 entries

    class Discrete(PickEnv):
        action_space = spaces.Discrete(K)

    with pytest.raises(PolicyConfigError, match="needs Box actions"):
        PPO(CandidatePolicy, Discrete(), device="cpu", policy_kwargs={"candidate_width": W})


def test_recipes_select_it_by_name_with_ppo_only():
    hyper = {"policy": "candidate_scorer", "policy_kwargs": {"candidate_width": W, "net_arch": [8]}}
    spaces_ = (PickEnv.observation_space, PickEnv.action_space)
    assert isinstance(build_algo("ppo", hyper, spaces=spaces_).policy, CandidatePolicy)
    with pytest.raises(RecipeError, match="candidate_scorer.*set trainer.algo: ppo"):
        build_algo("maskable_ppo", hyper, spaces=spaces_)
    with pytest.raises(RecipeError, match="not a policy"):
        build_algo("ppo", {**hyper, "policy": "candidate_scorers"}, spaces=spaces_)

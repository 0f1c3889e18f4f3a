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

    class MultiDiscrete(PickEnv):
        action_space = spaces.MultiDiscrete([K, K])

    with pytest.raises(PolicyConfigError, match=r"needs Box actions \(K - 1 entries\) or Discrete\(K\)"):
        PPO(CandidatePolicy, MultiDiscrete(), device="cpu", policy_kwargs={"candidate_width": W})


class ChoiceEnv(PickEnv):
    """PickEnv with the pick as ``Discrete(K)`` (MarioLatent-v1's ``candidate_action: choice``)."""

    action_space = spaces.Discrete(K)

    def step(self, a):
        pick = int(a)
        return self.obs, float(self.obs[C + pick * W]), True, False, {"pick": pick}


def choice_model(seed=0, **policy_kwargs):
    return PPO(CandidatePolicy, ChoiceEnv(), n_steps=256, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=seed,
               device="cpu", policy_kwargs={"net_arch": [32], "candidate_width": W, **policy_kwargs})


def test_choice_starts_uniform_shares_one_scorer_and_learns_the_better_candidate():
    """With Discrete(K) the scores are a categorical's logits: uniform at the start (mode candidate
    0), equivariant to the candidates' order once trained, and PPO learns to pick by value."""
    m = choice_model()
    obs = torch.as_tensor(np.random.default_rng(0).uniform(0, 1, (5, C + K * W)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(m.policy.get_distribution(obs).distribution.probs, torch.full((5, K), 1 / K))
    assert (m.predict(obs.numpy(), deterministic=True)[0] == 0).all()
    m.learn(3072)
    with torch.no_grad():
        probs = m.policy.get_distribution(obs).distribution.probs
        swapped = obs.clone()  # candidates 1 and 2 swap places: their probabilities swap
        swapped[:, C + W : C + 2 * W], swapped[:, C + 2 * W :] = obs[:, C + 2 * W :], obs[:, C + W : C + 2 * W]
        probs_swapped = m.policy.get_distribution(swapped).distribution.probs
    assert (probs - 1 / K).abs().max() > 0.05
    assert torch.allclose(probs_swapped, probs[:, [0, 2, 1]], atol=1e-5)
    env, picked, zero = ChoiceEnv(), [], []
    for seed in range(200):
        o, _ = env.reset(seed=seed)
        picked.append(env.step(m.predict(o, deterministic=True)[0])[1])
        zero.append(float(o[C]))
    assert np.mean(picked) > np.mean(zero) + 0.1  # candidate 0 alone ~0.5, the best of 3 ~0.75


def test_choice_with_rule_gain_starts_at_the_rules_pick():
    """rule_gain with Discrete(K): logits g * r_k + s_k; the untrained mode is the candidate with the
    largest rule score (the first of equals), and a larger gain follows it more sharply."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, (200, C + K * W)).astype(np.float32)
    obs[:20, C + W], obs[:20, C + 2 * W] = obs[:20, C], obs[:20, C] / 2  # 1 ties 0, 2 is worse: the first, 0
    rule = obs[:, C::W]
    want = rule.argmax(1)
    assert (want[:20] == 0).all() and len(set(want.tolist())) == K
    sharp = []
    for gain in (5.0, 50.0):
        m = choice_model(rule_gain=gain, rule_entries=[0])
        assert (m.predict(obs, deterministic=True)[0] == want).all()
        with torch.no_grad():
            probs = m.policy.get_distribution(torch.as_tensor(obs)).distribution.probs.numpy()
        sharp.append(probs[np.arange(200), want].mean())
    assert 1 / K < sharp[0] < sharp[1]


def test_recipes_select_it_by_name_with_ppo_only():
    hyper = {"policy": "candidate_scorer", "policy_kwargs": {"candidate_width": W, "net_arch": [8]}}
    spaces_ = (PickEnv.observation_space, PickEnv.action_space)
    assert isinstance(build_algo("ppo", hyper, spaces=spaces_).policy, CandidatePolicy)
    with pytest.raises(RecipeError, match="candidate_scorer.*set trainer.algo: ppo"):
        build_algo("maskable_ppo", hyper, spaces=spaces_)
    with pytest.raises(RecipeError, match="not a policy"):
        build_algo("ppo", {**hyper, "policy": "candidate_scorers"}, spaces=spaces_)


def _pick(a):
    """MarioLatent-v1's (and PickEnv's) rule: the largest entry if >= 0.5, else candidate 0."""
    a = np.asarray(a)
    return np.where(a.max(1) >= 0.5, a.argmax(1) + 1, 0)


def test_rule_gain_zero_is_the_default_policy_bit_for_bit():
    """The option is opt-in: ``rule_gain: 0`` builds the same parameters and the same actions as
    leaving it out (every existing recipe)."""
    obs = torch.as_tensor(np.random.default_rng(1).uniform(0, 1, (6, C + K * W)), dtype=torch.float32)
    plain, off = model(seed=3), model(seed=3)
    off = PPO(CandidatePolicy, PickEnv(), n_steps=256, batch_size=64, seed=3, device="cpu",
              policy_kwargs={"net_arch": [32], "candidate_width": W, "log_std_init": -0.9, "rule_gain": 0.0})
    for (name, p), (_, q) in zip(plain.policy.state_dict().items(), off.policy.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    with torch.no_grad():
        for m in (plain, off):
            m.policy.mlp_extractor.score[-1].weight.normal_(generator=torch.Generator().manual_seed(0))
        assert torch.equal(plain.policy.get_distribution(obs).distribution.mean,
                           off.policy.get_distribution(obs).distribution.mean)


def test_rule_gain_starts_at_the_rule_and_learns_on_top():
    """With rule_gain > 0 the untrained mean action picks the candidate whose rule entries sum
    highest (candidate 0 on a tie), inside [-1, 1] so SB3's clip keeps the order; the learned score
    still moves it."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 1, (200, C + K * W)).astype(np.float32)
    obs[:20, C + W], obs[:20, C + 2 * W] = obs[:20, C], obs[:20, C] / 2  # 1 ties 0, 2 is worse: candidate 0
    m = PPO(CandidatePolicy, PickEnv(), n_steps=256, batch_size=64, seed=0, device="cpu",
            policy_kwargs={"net_arch": [32], "candidate_width": W, "rule_gain": 20.0, "rule_entries": [0]})
    rule = obs[:, C::W]  # each block's entry 0: the value
    want = np.where(rule[:, 1:].max(1) > rule[:, 0], rule[:, 1:].argmax(1) + 1, 0)
    with torch.no_grad():
        mean = m.policy.get_distribution(torch.as_tensor(obs)).distribution.mean.numpy()
    assert (np.abs(mean) <= 1).all() and (_pick(mean) == want).all()
    assert (want[:20] == 0).all() and len(set(want.tolist())) == K
    assert (_pick(m.predict(obs, deterministic=True)[0]) == want).all()  # clipped actions: the same picks
    with torch.no_grad():  # a learned score on the noise entry (block entry 1) overrides the rule
        linear = torch.nn.Linear(C + 2 * W, 1)
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[0, C + 1] = 10.0
        m.policy.mlp_extractor.score = torch.nn.Sequential(linear)
        mean = m.policy.get_distribution(torch.as_tensor(obs)).distribution.mean.numpy()
    noise = obs[:, C + 1 :: W]
    clear = 10 * (np.sort(noise, 1)[:, -1] - np.sort(noise, 1)[:, -2]) > 1  # a score gap over the rule's range
    assert clear.sum() > 50 and (_pick(mean)[clear] == noise[clear].argmax(1)).all()


def test_rule_options_are_checked():
    kw = {"candidate_width": W}
    with pytest.raises(PolicyConfigError, match="rule_gain = -1"):
        PPO(CandidatePolicy, PickEnv(), device="cpu", policy_kwargs={**kw, "rule_gain": -1, "rule_entries": [0]})
    with pytest.raises(PolicyConfigError, match=r"rule_entries = \(\)"):
        PPO(CandidatePolicy, PickEnv(), device="cpu", policy_kwargs={**kw, "rule_gain": 5.0})
    with pytest.raises(PolicyConfigError, match=r"rule_entries = \[2\]"):
        PPO(CandidatePolicy, PickEnv(), device="cpu", policy_kwargs={**kw, "rule_gain": 5.0, "rule_entries": [2]})
    hyper = {"policy": "candidate_scorer",
             "policy_kwargs": {"candidate_width": W, "net_arch": [8], "rule_gain": 5.0, "rule_entries": [0]}}
    policy = build_algo("ppo", hyper, spaces=(PickEnv.observation_space, PickEnv.action_space)).policy
    assert policy.rule_gain == 5.0 and policy.rule_entries == (0,)

"""The ``lm_prior`` policy: starts exactly at the LM's top-k distribution, trains with MaskablePPO,
saves and loads, refuses spaces it cannot read, and is selectable from recipes. A tiny random GPT-2
(the one of test_text_env.py) stands in for the LM."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO

from rlcreate.envs.text_tokens import LOGPROB_FLOOR
from rlcreate.recipe import RecipeError, parse_recipe
from rlcreate.sb3 import make_algo
from rlcreate.sb3.policies import LMPriorPolicy, PolicyConfigError, resolve_policy
from tests.test_text_env import tiny_lm, vec_env

K = 8


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def make_model(env, seed=0, **kw):
    return MaskablePPO(LMPriorPolicy, env, n_steps=8, batch_size=16, n_epochs=2, seed=seed, device="cpu",
                       policy_kwargs={"net_arch": [16, 16]}, **kw)


def probs(model, obs, masks):
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(obs), masks)
    return dist.distribution.probs.numpy()


def masked_softmax(logprobs, masks):
    """The LM's distribution renormalised over the allowed top-k slots (what lm_topk samples)."""
    lp = np.where(masks, logprobs.astype(np.float64), -np.inf)
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def some_steps(env, n=3, seed=0):
    """Observations and masks after ``n`` steps with seeded random allowed actions (mid-text states)."""
    rng = np.random.default_rng(seed)
    obs = env.reset()
    for _ in range(n):
        masks = env.action_masks()
        obs, *_ = env.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    return obs, env.action_masks()


def test_initial_policy_is_the_lms_top_k_distribution(lm):
    # min_new_tokens masks EOS early: some rows have masked slots, which must get probability 0
    env = vec_env(lm, n=4, top_k=K, max_new_tokens=6, min_new_tokens=6)
    model = make_model(env)
    d = env.core.stepper.hidden_size
    for step in range(4):
        obs, masks = some_steps(env, n=step, seed=step)
        expected = masked_softmax(env.core.topk_logprobs, masks)
        assert np.allclose(obs[:, d:d + K], np.clip(env.core.topk_logprobs, LOGPROB_FLOOR, 0))
        got = probs(model, obs, masks)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        # a uniform policy would differ: the test could fail
        assert np.abs(got - masked_softmax(np.zeros_like(expected), masks)).max() > 1e-3
    # a mask that blocks more slots renormalises over the rest; forward() and evaluate_actions agree
    masks = np.ones((4, K), bool)
    masks[:, :3] = False
    expected = masked_softmax(env.core.topk_logprobs, masks)
    np.testing.assert_allclose(probs(model, obs, masks), expected, rtol=1e-5, atol=1e-7)
    actions = torch.as_tensor(np.full(4, 5))
    with torch.no_grad():
        _, log_prob, entropy = model.policy.evaluate_actions(torch.as_tensor(obs), actions, torch.as_tensor(masks))
        _, _, fwd_log_prob = model.policy(torch.as_tensor(obs), deterministic=True, action_masks=masks)
    np.testing.assert_allclose(log_prob.numpy(), np.log(expected[:, 5]), rtol=1e-5)
    np.testing.assert_allclose(fwd_log_prob.numpy(), np.log(expected.max(axis=1)), rtol=1e-5)
    assert np.all(entropy.numpy() > 0)


def test_masked_ppo_trains_the_correction_and_saves(lm, tmp_path):
    env = vec_env(lm, n=4, top_k=K, max_new_tokens=4)
    model = make_model(env)
    assert not model.policy.action_net.weight.any()
    obs, masks = some_steps(env, n=1)
    before = probs(model, obs, masks)
    model.learn(total_timesteps=64)
    after = probs(model, obs, masks)
    assert model.policy.action_net.weight.abs().sum() > 0  # the correction learned something
    assert np.abs(after - before).max() > 0
    # save / load: same class, same prior location, same action distribution
    model.save(tmp_path / "model.zip")
    loaded = MaskablePPO.load(tmp_path / "model.zip", device="cpu")
    assert isinstance(loaded.policy, LMPriorPolicy) and loaded.policy.prior_start == model.policy.prior_start
    np.testing.assert_allclose(probs(loaded, obs, masks), after, rtol=1e-6)
    # the policy alone too (BasePolicy.save keeps the constructor arguments, prior_start included)
    model.policy.save(tmp_path / "policy.pt")
    alone = LMPriorPolicy.load(tmp_path / "policy.pt", device="cpu")
    np.testing.assert_allclose(probs(type("M", (), {"policy": alone})(), obs, masks), after, rtol=1e-6)


def test_same_seed_same_policy(lm):
    def trained():
        env = vec_env(lm, n=4, top_k=K, max_new_tokens=4, seed=3)
        model = make_model(env, seed=3)
        model.learn(total_timesteps=32)
        return model.policy.action_net.weight.detach().clone()

    assert torch.equal(trained(), trained())


def test_spaces_it_cannot_read_are_refused():
    box = spaces.Box(-1.0, 1.0, (10,), np.float32)
    with pytest.raises(PolicyConfigError, match=r"entries \[1:9\] have bounds \[-1.0, 1.0\], not the log-prob"):
        LMPriorPolicy(box, spaces.Discrete(8), lambda _: 3e-4)
    with pytest.raises(PolicyConfigError, match=r"prior_start = 5: the top-k log-probs \[5:13\] do not fit"):
        LMPriorPolicy(box, spaces.Discrete(8), lambda _: 3e-4, prior_start=5)
    with pytest.raises(PolicyConfigError, match=r"needs Discrete\(k\) actions"):
        LMPriorPolicy(box, spaces.Box(-1, 1, (2,)), lambda _: 3e-4)
    low = np.r_[np.full(4, -1.0), np.full(3, LOGPROB_FLOOR), 0.0].astype(np.float32)
    high = np.r_[np.full(4, 1.0), np.zeros(3), 1.0].astype(np.float32)
    policy = LMPriorPolicy(spaces.Box(low, high), spaces.Discrete(3), lambda _: 3e-4)
    assert policy.prior_start == 4


def test_recipes_select_it_by_name(lm):
    assert resolve_policy("lm_prior") is LMPriorPolicy and resolve_policy("MlpPolicy") == "MlpPolicy"
    env = vec_env(lm, n=2, top_k=K, max_new_tokens=4)

    def recipe(algo):
        return parse_recipe({"name": "t", "seed": 0, "env": {"id": "rlcreate/TextTokens-v0", "kwargs": {}},
                             "rewards": {"distinct": {"reward": "distinct_n", "args": {"n": 1}}},
                             "trainer": {"algo": algo, "total_timesteps": 8, "n_envs": 2,
                                         "hyper": {"policy": "lm_prior", "n_steps": 4, "batch_size": 8}}})

    assert isinstance(make_algo(recipe("maskable_ppo"), env, None).policy, LMPriorPolicy)
    with pytest.raises(RecipeError, match=r"policy = 'lm_prior' with trainer.algo = 'ppo'.*set trainer.algo: maskable_ppo"):
        make_algo(recipe("ppo"), env, None)

"""The MarioTokens speed paths change no result: the ``lm_prior`` policy's lean rollout forward and
``evaluate_actions`` (its MLPs called layer by layer, no distribution objects) give the same bits (actions, log-probs, entropies, values and gradients) as
sb3-contrib's distribution objects, and a short MaskablePPO training of the demo recipe (shipped
column LM) writes the same levels, masks, observations and rewards and ends with the same weights
when every fast path is swapped for its plain reference."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

import rlcreate.envs.token_stream as token_stream
from rlcreate.levels.objectives import SEGMENT, VarietyOffers
from rlcreate.sb3.policies import LMPriorPolicy


def reference_latents(policy, obs):
    """SB3's own path: extract_features, then the MLP extractor as modules."""
    return policy.mlp_extractor(policy.extract_features(obs))


def reference_forward(policy, obs, deterministic=False, action_masks=None):
    """The policy's forward through SB3's modules and sb3-contrib's MaskableCategorical (the code
    before the lean path)."""
    latent_pi, latent_vf = reference_latents(policy, obs)
    values = policy.value_net(latent_vf)
    distribution, _ = policy._distribution(obs, latent_pi, action_masks)
    actions = distribution.get_actions(deterministic=deterministic)
    return actions.reshape(-1), values, distribution.log_prob(actions)


def reference_evaluate(policy, obs, actions, action_masks=None):
    latent_pi, latent_vf = reference_latents(policy, obs)
    distribution, prior = policy._distribution(obs, latent_pi, action_masks)
    entropy = distribution.entropy()
    if policy.kl_to_prior:
        entropy = entropy + (distribution.distribution.probs * prior).sum(-1)
    return policy.value_net(latent_vf), distribution.log_prob(actions), entropy


def reference_features(core, window):
    """The env's feature windows as before: ``nan_to_num`` on every one."""
    if window.shape[2] > 1:
        return np.nan_to_num(core.featurizer(window), nan=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(core.featurizer(window), nan=0.0)


@pytest.mark.parametrize("offer_dtype", [np.int8, np.int64])
def test_variety_offers_by_column_keys_match_tile_by_tile(offer_dtype):
    """Per-offer repeats found from the columns' bytes are the tile-by-tile ones, on levels that
    repeat earlier segments (so offers that repeat, with near and far segments, both occur)."""
    rng = np.random.default_rng(0)
    offers = VarietyOffers(0.05)
    n, k, h = 8, 12, 14
    levels = rng.integers(0, 4, (n, h, 128)).astype(np.int8)
    levels[: n // 2, :, 48:64] = levels[: n // 2, :, 16:32]  # half the rows repeat segment 1 as segment 3
    levels[0, 2, 50] = 3 - levels[0, 2, 50] % 4  # one tile off: still near
    seen = np.zeros(2, int)
    for t in range(0, 128, 3):
        offered = rng.integers(0, 4, (n, k, h)).astype(offer_dtype)
        offered[:, ::3] = levels[:, :, t % SEGMENT][:, None, :]  # the column of segment 0 here
        offered[:, 1::3] = levels[:, :, 16 + t % SEGMENT][:, None, :]  # ... and of segment 1
        got = offers.observe(levels[:, :, :t], offered, 128)
        want = offers.observe_tile_by_tile(levels[:, :, :t], offered, 128)
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want))
        seen += [got[1].sum() > 0, (got[1] == 0).sum() > 0]
    assert seen.min() > 5  # repeats and non-repeats were both offered many times


def vocabulary_levels(seed: int = 0, n: int = 6, t_max: int = 128):
    """A column vocabulary drawn from a few tiles (with two duplicate columns), and ``n`` levels of
    its rows that repeat earlier segments (some one column off), as (columns, ids (n, t_max))."""
    rng = np.random.default_rng(seed)
    columns = rng.choice(np.array([0, 1, 2, 5, 6, 7], np.int8), size=(40, 14), p=[0.6, 0.2, 0.05, 0.05, 0.05, 0.05])
    columns[[7, 9]] = columns[3]  # equal columns under other rows: repeats must still be seen
    ids = rng.integers(0, len(columns), (n, t_max))
    ids[: n // 2, 32:48] = ids[: n // 2, 0:16]
    ids[0, 40] = (ids[0, 40] + 1) % len(columns)
    ids[1, 50:66] = np.where(ids[1, 18:34] == 3, 9, ids[1, 18:34])  # a repeat through a duplicate column
    return columns, ids


def test_offer_features_from_vocabulary_rows_equal_the_tile_path():
    """``observe_ids`` (tables over the column vocabulary) gives exactly ``observe``'s arrays for the
    demo's offer features (variety, element profile, set profile, and both side by side), at every
    length of levels that repeat their segments, with offers that repeat and do not."""
    from rlcreate.envs.column_tokens import _JointOffers, offer_features
    from rlcreate.levels.value_rewards import ProfileOffers, SetProfileOffers

    columns, ids = vocabulary_levels()
    n, k = len(ids), 10
    set_profile = SetProfileOffers(memory=8)
    set_profile.finished(columns[ids].transpose(0, 2, 1))  # a context away from the human mean
    parts = [VarietyOffers(0.05), ProfileOffers(), set_profile]
    rng = np.random.default_rng(1)
    repeats = 0
    for t in range(128):
        offer_ids = rng.integers(0, len(columns), (n, k))
        offer_ids[:, 0] = ids[:, t - SEGMENT] if t >= SEGMENT else 0  # the column a repeat would need
        offer_ids[:, 1] = 7 if t % 2 else 3
        prefix, offered = columns[ids[:, :t]].transpose(0, 2, 1), columns[offer_ids]
        for features in [*parts, _JointOffers(parts[:2])]:
            got = offer_features(features, prefix, offered, 128, ids[:, :t], offer_ids, columns)
            want = features.observe(prefix, offered, 128)
            assert all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, want))
        repeats += int(parts[0].observe(prefix, offered, 128)[1].sum())
    assert repeats > 20  # offers that keep a repeat alive were seen, not only zeros


def test_reach_seam_from_the_mask_call_equals_solving_the_chosen_column():
    """The playable-only mask's exit states, taken for the chosen offer, are the states that
    ``advance`` gives on that column, from fresh starts and from mid-level states (jumps in flight)."""
    from rlcreate.levels import corpus
    from rlcreate.levels.envs import SolverSeam
    from rlcreate.levels.solver import solve_batch

    level = np.concatenate([b.grid() for b in corpus.blocks()[:6]], axis=1)
    rng = np.random.default_rng(0)
    for apex in (None, 1):
        seam = SolverSeam(apex_steps=apex)
        states = [np.zeros(seam.size)]
        for x in rng.choice(level.shape[1] - 1, size=30, replace=False):
            states.append(solve_batch(level[None, :, : x + 1], apex_steps=seam.apex_steps)[3][0].reshape(-1).astype(float))
        states = np.stack(states)
        cand = level.T[rng.integers(0, level.shape[1], size=(len(states), 12))]  # (n, k, 14)
        cand[:, 0] = 0  # a pit column
        alive, exits = seam.alive_after_exits(cand, states)
        assert np.array_equal(alive, seam.alive_after(cand, states))
        for j in range(cand.shape[1]):
            want = seam.advance(cand[:, j, :, None], states)
            got = seam.state_from_exits(exits[:, j])
            assert got.dtype == want.dtype and np.array_equal(got, want)
        assert 0 < alive.mean() < 1


def test_column_lm_split_head_gives_the_forwards_logits_and_hidden_states(monkeypatch):
    """``ColumnLM.split_head`` (transformer, then lm_head) gives the same logits and final hidden
    states, bit for bit, as the forward asked for every layer's hidden states: from <bos> and from
    a prompt, over a level's steps."""
    from rlcreate.levels.generators.column_lm import ColumnLM

    lm = ColumnLM.load()
    prompt = lm.generate(6, batch=3, seed=1)

    def run(split: bool) -> list[np.ndarray]:
        monkeypatch.setattr(ColumnLM, "split_head", split)
        out, rng = [], np.random.default_rng(0)
        for grids in (None, prompt):
            logits, state = lm.start(3, prompt_grids=grids, with_hidden=True)
            out += [logits, state.hidden]
            for _ in range(40):
                pick = np.argsort(-logits, axis=1)[:, rng.integers(0, 4)]
                logits, state = lm.step(state, pick, with_hidden=True)
                out += [logits, state.hidden]
        return out

    fast, ref = run(True), run(False)
    assert lm._gpt2 and len(fast) == len(ref) == 164
    assert all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(fast, ref))
    assert not np.array_equal(fast[1], fast[3])  # the hidden state moves from step to step


def small_policy(seed: int = 0) -> tuple[LMPriorPolicy, int]:
    """An lm_prior policy on MarioTokens' layout (hidden, k scaled log-probs, ..., F deficits, k x F
    gains) with every head randomised, so the learned correction and the offer head both matter."""
    d, k, f = 6, 5, 2
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + 3 + f + k * f)])
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    th.manual_seed(seed)
    policy = LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=f,
                           offer_guidance=4.0, kl_to_prior=True, net_arch=[8, 8])
    with th.no_grad():
        for p in policy.parameters():
            p.copy_(th.randn_like(p) * 0.5)
    return policy, k


def random_batch(policy, k, n, seed):
    rng = np.random.default_rng(seed)
    obs = th.as_tensor(rng.random((n, policy.observation_space.shape[0]), np.float32))
    masks = rng.random((n, k)) < 0.6
    masks[np.arange(n), rng.integers(0, k, n)] = True  # every row allows a slot
    return obs, masks


def test_lean_forward_samples_the_same_actions_and_log_probs():
    policy, k = small_policy()
    for seed in range(5):
        obs, masks = random_batch(policy, k, 64, seed)
        for deterministic in (False, True):
            th.manual_seed(seed)
            with th.no_grad():
                got = policy(obs, deterministic=deterministic, action_masks=masks)
            after = th.rand(3)  # the lean path draws from the global generator exactly as much
            th.manual_seed(seed)
            with th.no_grad():
                want = reference_forward(policy, obs, deterministic, masks)
            assert th.equal(th.rand(3), after)
            for a, b in zip(got, want):
                assert th.equal(a, b)
    # a rollout's forward in inference mode (the default) gives the bits of one under no_grad
    for seed in range(3):
        obs, masks = random_batch(policy, k, 64, seed)
        outs = []
        for inference in (True, False):
            policy.rollout_inference_mode = inference
            th.manual_seed(seed)
            with th.no_grad():
                outs.append(policy(obs, action_masks=masks))
        assert outs[0][0].is_inference() and not outs[1][0].is_inference()
        assert all(th.equal(a, b) for a, b in zip(*outs))
    policy.rollout_inference_mode = True
    # the sampled actions really vary with the seed (the comparison above is not of constants)
    th.manual_seed(0)
    first = policy(obs, action_masks=masks)[0]
    th.manual_seed(1)
    assert not th.equal(first, policy(obs, action_masks=masks)[0])


def test_lean_evaluate_actions_gives_the_same_losses_and_gradients():
    lean, k = small_policy(seed=1)
    ref = copy.deepcopy(lean)
    obs, masks = random_batch(lean, k, 128, seed=3)
    actions = th.as_tensor(np.array([np.random.default_rng(i).choice(np.flatnonzero(m)) for i, m in enumerate(masks)]))
    masks_t = th.as_tensor(masks)
    advantages = th.randn(128)
    for policy, fn in ((lean, type(lean).evaluate_actions), (ref, reference_evaluate)):
        values, log_prob, entropy = fn(policy, obs, actions, masks_t)
        ratio = th.exp(log_prob - log_prob.detach() + 0.01)
        loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 0.8, 1.2)).mean()
        loss = loss + 0.06 * -th.mean(entropy) + 0.5 * th.nn.functional.mse_loss(th.zeros(128), values.flatten())
        loss.backward()
        policy.outputs = (values, log_prob, entropy)
    for a, b in zip(lean.outputs, ref.outputs):
        assert th.equal(a, b)
    grads = [(p.grad, q.grad) for p, q in zip(lean.parameters(), ref.parameters())]
    assert all(g is not None and th.equal(g, h) for g, h in grads)
    assert any(g.abs().sum() > 0 for g, _ in grads)


@pytest.mark.slow
def test_demo_recipe_training_is_unchanged_by_the_fast_paths(monkeypatch):
    """Two rollouts and updates of the demo recipe (shipped column LM, 4 rows x 24 columns): the
    rollout buffers (observations, masks, actions, rewards, values, log-probs) and the final
    weights are the same bits with the fast paths and with their references (numpy's top-k for
    every row, the distribution-object policy paths, masks fancy-indexed, variety offers compared
    tile by tile, offer features from tiles, the reach seam solved again, nan_to_num on every
    feature window, the LM's forward asked for all hidden states)."""
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.assemble import assemble
    from rlcreate.envs.column_tokens import ColumnTokensCore
    from rlcreate.levels.demo import demo_recipe_path
    from rlcreate.levels.envs import SolverSeam
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.value_rewards import ProfileOffers, SetProfileOffers
    from rlcreate.recipe import load_recipe
    from rlcreate.sb3.algo import make_algo

    def run() -> tuple[list[np.ndarray], dict]:
        recipe = load_recipe(demo_recipe_path())
        recipe.env["kwargs"]["n_columns"] = 24
        recipe.trainer["n_envs"] = 4
        recipe.trainer["hyper"].update(n_steps=24, batch_size=32, n_epochs=2)
        venv = assemble(recipe).make_env(4, 0, "train")
        model = make_algo(recipe, VecMonitor(venv), None)
        buffers = []
        for _ in range(2):
            model.learn(total_timesteps=24 * 4, reset_num_timesteps=False)
            b = model.rollout_buffer
            buffers += [np.array(x) for x in (b.observations, b.action_masks, b.actions, b.rewards, b.values, b.log_probs)]
        return buffers, {k: v.clone() for k, v in model.policy.state_dict().items()}

    fast_buffers, fast_weights = run()
    with monkeypatch.context() as m:
        m.setattr(token_stream, "_topk_without_ties", lambda logits, k: None)  # numpy's argpartition path
        m.setattr(LMPriorPolicy, "forward", reference_forward)
        m.setattr(LMPriorPolicy, "evaluate_actions", reference_evaluate)
        m.setattr(VarietyOffers, "observe", VarietyOffers.observe_tile_by_tile)
        for cls in (VarietyOffers, ProfileOffers, SetProfileOffers):  # offer features from tiles
            m.setattr(cls, "observe_ids", None)
        m.setattr(SolverSeam, "alive_after_exits", None)  # the reach seam solved again per step
        m.setattr(ColumnTokensCore, "_features", reference_features)
        m.setattr(ColumnLM, "split_head", False)  # the forward with every layer's hidden states
        m.setattr("rlcreate.envs.core_vec_env.CoreVecEnv.env_method",
                  lambda self, name, *a, indices=None, **kw: list(self.core.action_masks()[self._indices(indices)]))
        ref_buffers, ref_weights = run()
    assert len(fast_buffers) == len(ref_buffers) == 12
    for a, b in zip(fast_buffers, ref_buffers):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert fast_weights.keys() == ref_weights.keys()
    assert all(th.equal(fast_weights[k], ref_weights[k]) for k in fast_weights)
    assert np.abs(fast_buffers[3]).sum() > 0  # rewards were paid (levels ended inside the rollouts)

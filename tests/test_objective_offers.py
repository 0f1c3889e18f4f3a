"""Per-offer objective features: what taking an offered column does to a designer objective's own
measure, observed by MarioTokens-v1 (``offer_objective``) and scored by the lm_prior policy's offer
head (``offer_structure``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from rlcreate.envs.latent_level import EnvConfigError
from rlcreate.levels import tiles as T
from rlcreate.levels.objectives import beats
from rlcreate.rewards.registry import get_reward
from rlcreate.sb3.policies import LMPriorPolicy, PolicyConfigError

H = T.HEIGHT


def col(height: int = 2, enemy: bool = False, pit: bool = False, platform: bool = False, pipe: bool = False):
    c = np.zeros(H, np.int8)
    if not pit:
        c[H - height :] = T.GROUND
    if enemy:
        c[H - height - 1] = T.ENEMY
    if platform:
        c[5] = T.BRICK
    if pipe:
        c[H - height - 2] = T.PIPE_TL
        c[H - height - 1] = T.PIPE_BL
    return c


def level(cols) -> np.ndarray:
    return np.stack(cols, 1)


def random_levels(n: int, w: int, seed: int) -> np.ndarray:
    """Ground of varying height with pits, pipes, platforms and enemies."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            level(
                [
                    col(
                        int(rng.integers(1, 7)),
                        enemy=rng.random() < 0.1,
                        pit=rng.random() < 0.25,
                        platform=rng.random() < 0.2,
                        pipe=rng.random() < 0.1,
                    )
                    for _ in range(w)
                ]
            )
            for _ in range(n)
        ]
    )


@pytest.mark.parametrize("t", [0, 1, 15, 16, 37])
def test_rhythm_offers_flag_exactly_the_beats_the_reward_counts(t):
    levels = random_levels(6, t + 5, seed=t)
    prefix, offered = levels[:, :, :t], levels[:, :, t:].transpose(0, 2, 1)  # 5 offers per row
    ctx, per = get_reward("rhythm").offer_features().observe(prefix, offered, 128)
    assert ctx.shape == (6, 2) and per.shape == (6, 5, 2)
    start = t // 16 * 16
    for j in range(5):
        full = np.concatenate([prefix, offered[:, j, :, None]], 2)
        assert per[:, j, 0].tolist() == beats(full)[:, t].astype(float).tolist()  # the reward's beats()
    need = beats(prefix)[:, start:t].sum(1) == 0 if t else np.ones(6, bool)
    assert ctx[:, 0].tolist() == need.astype(float).tolist()
    assert np.allclose(ctx[:, 1], need * (t % 16) / 15)


def test_sketch_offers_read_the_rewards_own_height_and_wanted_height():
    reward = get_reward("sketch_match", sketch=[2, 5])
    feats = reward.offer_features()
    prefix = level([col(2)] * 20)[None]  # segment 1: the sketch wants height 5
    offered = np.stack([col(h) for h in (2, 4, 5, 8)] + [col(pit=True)])[None]
    ctx, per = feats.observe(prefix, offered, 128)
    # a 16-column segment of the offer alone has SketchMatch's height: closeness = 1 - |h - 5| / 3
    heights = reward.heights(np.stack([np.repeat(c[:, None], 16, 1) for c in offered[0]]))[:, 0]
    assert heights.tolist() == [2, 4, 5, 8, 0]
    np.testing.assert_allclose(per[0, :, 1], np.maximum(0, 1 - np.abs(heights - 5) / 3))
    assert per[0, 2, 1] == 1.0 and per[0, 0, 1] == 0.0
    assert per[0, 3, 0] > per[0, 1, 0] > per[0, 0, 0] > per[0, 4, 0]  # raises the ground more .. less
    assert ctx[0, 0] > 0.85 and ctx[0, 1] > 0.7  # wanted above the last column; the segment is off
    on = feats.observe(level([col(2)] * 5)[None], offered, 128)[0]
    assert on[0, 0] == 0.5 and on[0, 1] == 0.0  # segment 0 wants 2 and has it


def test_athletic_ramp_and_variety_offers():
    prefix = level([col(2)] * 32)[None]
    offered = np.stack([col(2), col(pit=True), col(pit=True, platform=True), col(2, enemy=True)])[None]
    ctx, per = get_reward("style_athletic").offer_features().observe(prefix, offered, 128)
    assert per[0, :, 0].tolist() == [0, 0, 1, 0] and ctx[0, 0] > 0.9  # 6 bridged columns behind schedule
    with_it = np.concatenate([prefix, offered[:, 2, :, None]], 2)
    r = get_reward("style_athletic")
    assert r([with_it[0]])[0] > r([np.concatenate([prefix, offered[:, 1, :, None]], 2)[0]])[0]

    ctx, per = get_reward("difficulty_ramp").offer_features().observe(prefix, offered, 129)
    assert per[0].tolist() == [[0, 0], [1, 0], [1, 0], [0, 1]] and np.allclose(ctx, 0.25)

    varied = level([col(2)] * 16 + [col(6)] * 5)[None]  # segment 1 so far differs from segment 0
    again = level([col(2)] * 21)[None]  # segment 1 so far repeats segment 0
    offers = np.stack([col(2), col(4)])[None]
    var = get_reward("level_variety").offer_features()
    assert var.observe(again, offers, 128)[1][0, :, 0].tolist() == [1, 0]
    assert var.observe(again, offers, 128)[0][0, 0] == 1
    assert var.observe(varied, offers, 128)[1][0, :, 0].tolist() == [0, 0]
    assert var.observe(level([col(2)] * 7)[None], offers, 128)[1].sum() == 0  # no earlier segment


def test_profile_offers_count_pipes_question_blocks_and_coins_against_the_human_rate():
    from rlcreate.levels.value_rewards import human_element_stats

    coins = col(2)
    coins[4:7] = T.COIN
    qblock = col(2)
    qblock[6] = T.QCOIN
    offered = np.stack([col(2), col(2, pipe=True), qblock, coins])[None]
    features = get_reward("element_profile").offer_features()
    empty = level([col(2)] * 64)[None]  # half a level without any of them: behind the human rate
    ctx, per = features.observe(empty, offered, 128)
    assert per[0].tolist() == [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.875]]
    mu = human_element_stats(128)[0][[0, 1, 3]]  # pipes, question blocks, coins per 128 columns
    np.testing.assert_allclose(ctx[0], 0.5 + 0.5 * np.tanh(mu * 64 / 128 / 2))
    assert (ctx > 0.5).all()
    rich = level([coins] * 64)[None]  # 192 coins so far: far ahead on coins
    assert features.observe(rich, offered, 128)[0][0, 2] < 0.01
    assert features.observe(empty[:, :, :0], offered, 128)[0].tolist() == [[0.5] * 3]


def _policy(structure: int, guidance: float = 0.0):
    d, k, f = 4, 3, 2
    n = d + k + (1 + k) * f + (1 + k) * structure
    low = np.concatenate([np.full(d, -1.0), np.zeros(n - d)])
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    policy = LMPriorPolicy(
        space,
        spaces.Discrete(k),
        lambda _: 1e-3,
        prior_start=d,
        offer_features=f,
        offer_guidance=guidance,
        offer_structure=structure,
    )
    obs = th.zeros(1, n)
    obs[0, d : d + k] = th.tensor([1.0, 0.9, 0.8])
    ctrl = d + k
    obs[0, ctrl : ctrl + f] = th.tensor([1.0, 0.0])  # enemies behind, gaps ahead
    obs[0, ctrl + f : ctrl + f + k * f] = th.tensor([0, 0, 1, 0, 0, 1.0])  # slot 1 adds an enemy, slot 2 a gap
    return policy, obs


def test_offer_head_scores_structure_values_and_the_start_is_unchanged():
    base, obs0 = _policy(0, guidance=4.0)
    policy, obs = _policy(1, guidance=4.0)
    obs[0, -4] = 1.0  # context: the level needs it
    obs[0, -3:] = th.tensor([0.0, 0.0, 1.0])  # slot 2 (a gap, against schedule) has it
    expected = base.get_distribution(obs0).distribution.probs.detach()
    start = policy.get_distribution(obs).distribution.probs.detach()
    assert th.allclose(start, expected, atol=1e-6)  # zero head; guidance reads the control part only
    assert start[0, 2] < start[0, 0]
    with th.no_grad():
        policy.offer_net.bias.copy_(th.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 20.0]))  # "take what the level needs"
    p = policy.get_distribution(obs).distribution.probs.detach()
    assert p[0, 2] > 0.9
    obs[0, -4] = 0.0  # the level has enough of it now
    assert policy.get_distribution(obs).distribution.probs[0, 2] < start[0, 2]
    assert policy._get_constructor_parameters()["offer_structure"] == 1


def test_structure_that_does_not_fit_is_a_policy_error():
    d, k = 4, 3
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + 3 * (1 + k))])
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    with pytest.raises(PolicyConfigError, match="offer_features = 2, offer_structure = 2: .* do not fit"):
        LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=2, offer_structure=2)
    with pytest.raises(PolicyConfigError, match="offer_structure = -1: must be an integer >= 0"):
        LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_structure=-1)


def test_mario_tokens_observes_the_objectives_offer_features_at_its_end():
    from rlcreate.levels.envs import make_mario_tokens_vec

    rewards = {"objective": {"reward": "rhythm"}, "targets": {"reward": "target_match"}}
    kw = dict(n_envs=2, n_columns=20, k=4, seed=0, reward=rewards)
    plain = make_mario_tokens_vec(**kw)
    venv = make_mario_tokens_vec(offer_objective="objective", **kw)
    assert venv.observation_space.shape[0] == plain.observation_space.shape[0] + (1 + 4) * 2
    obs, ref = venv.reset(), plain.reset()
    for _ in range(18):  # the same actions in both: the same levels
        obs, *_ = venv.step(np.zeros(2, np.int64))
        ref, *_ = plain.step(np.zeros(2, np.int64))
    core = venv.core
    ctx, per = get_reward("rhythm").offer_features().observe(core.levels[:, :, : core.t], core.offered_columns(), 20)
    np.testing.assert_allclose(obs[:, -10:], np.concatenate([ctx, per.reshape(2, -1)], 1), atol=1e-6)
    np.testing.assert_array_equal(obs[:, :-10], ref)  # the rest is the plain env's observation
    both = make_mario_tokens_vec(
        offer_objective=["objective", "profile"],
        **{**kw, "reward": {**rewards, "profile": {"reward": "element_profile"}}},
    )
    assert both.observation_space.shape[0] == plain.observation_space.shape[0] + (1 + 4) * (2 + 3)
    both.reset()
    for _ in range(18):
        obs, *_ = both.step(np.zeros(2, np.int64))
    prefix, offered = both.core.levels[:, :, : both.core.t], both.core.offered_columns()
    np.testing.assert_array_equal(both.core.levels, core.levels)  # the same actions, the same levels
    (c1, v1), (c2, v2) = (
        get_reward(r).offer_features().observe(prefix, offered, 20) for r in ("rhythm", "element_profile")
    )
    want = np.concatenate([c1, c2, np.concatenate([v1, v2], 2).reshape(2, -1)], 1)
    np.testing.assert_allclose(
        obs[:, -25:], want, atol=1e-6
    )  # contexts, then per offer (slot-major) both terms' values
    with pytest.raises(EnvConfigError, match="offer_objective = 3: write a reward term's name or a list"):
        make_mario_tokens_vec(offer_objective=3, **kw)
    with pytest.raises(EnvConfigError, match="offer_objective = 'nope': not a term"):
        make_mario_tokens_vec(offer_objective="nope", **kw)
    with pytest.raises(EnvConfigError, match="offer_objective = 'targets': its reward .* gives no per-offer"):
        make_mario_tokens_vec(offer_objective="targets", **kw)


def test_set_profile_offers_read_the_levels_finished_so_far():
    """The set context starts at no deficit, moves with the finished levels' element counts on the
    set band's scale, and the env folds every finished batch into it (its values are the profile's)."""
    from rlcreate.levels.envs import make_mario_tokens_vec
    from rlcreate.levels.value_rewards import ProfileOffers, SetProfileOffers

    offers, prefix = SetProfileOffers(memory=64), np.zeros((2, 14, 0), np.int64)
    offered = np.stack([level([col(pipe=True), col()])[:, :1].T] * 2)  # (2, 1, H): a pipe's left column
    ctx, per = offers.observe(prefix, offered, 128)
    np.testing.assert_allclose(ctx, 0.5)
    np.testing.assert_array_equal(per, ProfileOffers().observe(prefix, offered, 128)[1])
    coins = level([col()] * 128)
    coins[5, ::8] = T.COIN  # 16 coins per level, no pipes: short of pipes, over on coins
    offers.finished(np.stack([coins] * 16))
    ctx, _ = offers.observe(prefix, offered, 128)
    assert ctx[0, 0] > 0.8 and ctx[0, 2] < 0.2 and np.allclose(ctx[0], ctx[1])
    np.testing.assert_allclose(offers.recent[2], 0.75 * offers.mu[2] + 0.25 * 16)  # 16 of memory 64
    rewards = {"set_profile": {"reward": "set_profile"}, "targets": {"reward": "target_match"}}
    venv = make_mario_tokens_vec(n_envs=2, n_columns=16, k=4, seed=0, reward=rewards, offer_objective="set_profile")
    venv.reset()
    before = venv.core.offer_structure.recent.copy()
    for _ in range(16):
        venv.step(np.zeros(2, np.int64))
    assert not np.array_equal(venv.core.offer_structure.recent, before)

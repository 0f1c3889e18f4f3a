"""The tension curve's per-offer features: the current segment's tension on the play scale with each
offered column appended, against the curve's wanted value (MarioTokens-v1's ``offer_objective``)."""

from __future__ import annotations

import numpy as np
import pytest

from rlcreate.errors import UserError
from rlcreate.levels import tiles as T
from rlcreate.levels.engagement import curve_values, tension
from rlcreate.rewards.registry import get_reward

H = T.HEIGHT


def col(height: int = 2, enemy: bool = False, pit: bool = False) -> np.ndarray:
    c = np.zeros(H, np.int8)
    if not pit:
        c[H - height :] = T.GROUND
    if enemy:
        c[H - height - 1] = T.ENEMY
    return c


def human(width: int, n: int = 6) -> np.ndarray:
    from rlcreate.levels.corpus import training_windows

    return np.asarray(training_windows(width, stride=37), np.int8)[:n]


def features(curve: str = "rising", scale: str = "play"):
    return get_reward("tension_curve", curve=curve, scale=scale, width=128).offer_features()


@pytest.mark.parametrize("scale", ["play", "play_ground", "play_ground32", "play_ground32_gen"])
def test_offer_tension_at_a_segments_last_column_is_the_rewards_own_tension(scale):
    w = human(32)
    f = features(scale=scale)
    offered = np.stack([w[:, :, 31], np.repeat(col(2)[None], len(w), 0)], axis=1)  # the true column, flat
    base, per, wanted = f.tensions(w[:, :, :31], offered, 128)
    assert per.shape == (len(w), 2) and base.shape == (len(w),)
    np.testing.assert_allclose(per[:, 0], tension(w, scale)[:, 1])  # the finished segment, exactly
    assert wanted == pytest.approx(curve_values("rising", 2, 8)[1])
    alt = w.copy()
    alt[:, :, 31] = col(2)
    np.testing.assert_allclose(per[:, 1], tension(alt, scale)[:, 1])


def test_a_staircase_offer_raises_the_tension_a_flat_one_keeps_and_the_context_follows_the_curve():
    flat_prefix = np.repeat(np.stack([col(2)] * (7 * 16 + 4), axis=1)[None], 2, 0)
    flat_prefix[1, :, 7 * 16 :] = np.stack([col(2 + c) for c in range(4)], axis=1)  # a staircase begun
    offered = np.repeat(np.stack([col(2), col(5), col(5, enemy=True)])[None], 2, 0)
    offered[1, 0] = col(5)  # row 1: keep the staircase's height (flat) vs climb on
    offered[1, 1] = col(8)
    f = features()
    ctx, per = f.observe(flat_prefix, offered, 128)
    assert ctx.shape == (2, 2) and per.shape == (2, 3, 2)
    assert ((ctx >= 0) & (ctx <= 1)).all() and ((per >= 0) & (per <= 1)).all()
    base, tj, wanted = f.tensions(flat_prefix, offered, 128)
    assert tj[0, 0] == base[0]  # a flat column on flat ground changes nothing: raise = 0.5
    assert per[0, 0, 0] == 0.5
    assert tj[0, 1] > base[0] and per[0, 1, 0] > 0.5  # a step up of 3 tiles raises the segment's tension
    assert tj[0, 2] >= tj[0, 1]  # and an enemy on it no less
    assert tj[1, 1] > tj[1, 0]  # climbing on raises it more than stopping the staircase
    assert base[1] > base[0]  # the begun staircase already reads harder than flat ground
    # the last segment of "rising" wants 0.81: flat ground is below it (context 1 > 0.5), and the
    # step-up brings the segment closer than the flat column does
    assert wanted == pytest.approx(0.15 + 0.7 * 7.5 / 8)
    assert ctx[0, 0] > 0.5 and per[0, 1, 1] > per[0, 0, 1]
    # at the first segment "rising" wants 0.19: the flat ground's context is lower there
    ctx0, _ = features().observe(flat_prefix[:, :, :4], offered, 128)
    assert ctx0[0, 0] < ctx[0, 0]


def test_carried_solver_state_gives_the_same_features_as_a_fresh_sweep():
    w = human(80, n=4)
    offered = w[:, :, [3, 17, 40, 60, 79]].transpose(0, 2, 1)  # 5 offers per row
    f = features("flat")
    for t in range(0, 70):  # the prefix grows by one column a call: the sweep is carried
        ctx, per = f.observe(w[:, :, :t], offered, 128)
    fresh = features("flat").observe(w[:, :, :69], offered, 128)
    np.testing.assert_array_equal(ctx, fresh[0])
    np.testing.assert_array_equal(per, fresh[1])
    again = f.observe(w[::-1, :, :50], offered[::-1], 128)  # other levels, shorter: swept afresh
    np.testing.assert_array_equal(again[1], features("flat").observe(w[::-1, :, :50], offered[::-1], 128)[1])


def test_only_the_play_scale_has_offer_features():
    with pytest.raises(UserError, match="scale = 'solver': per-offer features read the play scales only"):
        get_reward("tension_curve", scale="solver").offer_features()


def test_play_ground_scale_ignores_tiles_in_the_sky_that_the_play_scale_reads():
    from rlcreate.levels.engagement import ground_features, segment_play_features

    plain = np.repeat(np.stack([col(2)] * 64, axis=1)[None], 2, 0)
    plain[1, :, 20:24] = np.stack([col(2 + c) for c in range(4)], axis=1)  # a staircase in segment 1
    sky = plain.copy()
    sky[:, 2, 36:44] = T.BRICK  # bricks and a pipe hung from them, 8+ rows above the ground
    sky[:, 3:5, 40] = T.PIPE_BL
    sky[:, 5, 40] = T.PIPE_TL
    g_plain, g_sky = (ground_features(x[:, :, 32:48]) for x in (plain, sky))
    np.testing.assert_array_equal(g_plain, g_sky)  # the ground is the same
    assert ground_features(plain[:, :, 16:32])[1, 1] > ground_features(plain[:, :, 16:32])[0, 1]  # steps
    assert segment_play_features(plain, "play_ground").shape == (2, 4, 24)
    np.testing.assert_array_equal(tension(plain, "play_ground"), tension(sky, "play_ground"))
    assert not np.array_equal(tension(plain, "play"), tension(sky, "play"))  # the play scale moves


@pytest.mark.slow
def test_mario_tokens_observes_tension_and_profile_offers_side_by_side():
    from rlcreate.levels.envs import make_mario_tokens_vec

    rewards = {
        "engagement": {"reward": "tension_curve", "args": {"scale": "play", "width": 32}},
        "profile": {"reward": "element_profile"},
    }
    kw = dict(n_envs=2, n_columns=32, k=4, seed=0, reward=rewards)
    plain = make_mario_tokens_vec(**kw)
    venv = make_mario_tokens_vec(offer_objective=["engagement", "profile"], **kw)
    assert venv.observation_space.shape[0] == plain.observation_space.shape[0] + (1 + 4) * (2 + 3)
    venv.reset()
    for _ in range(20):
        obs, *_ = venv.step(np.zeros(2, np.int64))
    core = venv.core
    prefix, offered = core.levels[:, :, : core.t], core.offered_columns()
    c1, v1 = get_reward("tension_curve", scale="play", width=32).offer_features().observe(prefix, offered, 32)
    c2, v2 = get_reward("element_profile").offer_features().observe(prefix, offered, 32)
    want = np.concatenate([c1, c2, np.concatenate([v1, v2], 2).reshape(2, -1)], 1)
    np.testing.assert_allclose(obs[:, -25:], want, atol=1e-6)

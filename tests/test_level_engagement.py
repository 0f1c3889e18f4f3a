"""Engagement by play: the play-calibrated tension scale and the judge's two readings of a lost play."""

from __future__ import annotations

import numpy as np
import pytest

from rlcreate.levels import tiles as T
from rlcreate.rewards.registry import get_reward


def flat(width: int = 128, height: int = 2) -> np.ndarray:
    g = np.zeros((14, width), np.int8)
    g[14 - height :] = T.GROUND
    return g


def ramp_level(reverse: bool = False) -> np.ndarray:
    """Pits that widen (1..8 columns) and enemies that multiply from segment to segment."""
    g = flat()
    for s in range(8):
        k = 7 - s if reverse else s
        a = s * 16 + 4
        g[12:, a : a + k + 1] = T.EMPTY
        g[11, s * 16 + 13 : s * 16 + 13 + k // 2] = T.ENEMY
    return g


def lost_trace():
    from rlcreate.levels.play_trace import _parse

    pad = 3
    xs = ",".join(str((pad + c) * 16) for c in range(0, 40, 2))  # 2 columns a tick, lost in column 38
    return _parse(xs, "1,9,17", "LOSE", 64, pad)


def test_lost_play_readings_penalise_or_drop_the_segment_where_it_ended():
    from rlcreate.levels.play_trace import effort_slope, segment_effort

    tr = lost_trace()
    assert tr.fail_segment == 2 and tr.ticks.tolist() == [8, 8, 4, 0]
    pen, drop = segment_effort(tr, "penalty"), segment_effort(tr, "drop")
    assert pen[:2].tolist() == drop[:2].tolist() == [8 / 20 + 1, 8 / 20 + 1]
    assert pen[2] == pytest.approx(4 / 20 + 1 + 10) and np.isnan(pen[3])
    assert np.isnan(drop[2:]).all()
    assert effort_slope(tr, "penalty") > 0.8  # the lost segment reads as the hardest and last
    assert effort_slope(tr, "drop") == 0.0  # two passed segments: too few for a slope
    with pytest.raises(ValueError, match="lost = 'ignore'"):
        segment_effort(tr, "ignore")


def test_segment_play_features_carry_the_neighbours_path():
    from rlcreate.levels.engagement import segment_play_features

    x = segment_play_features(np.stack([flat(), ramp_level()]))
    assert x.shape == (2, 8, 21)
    own, prev, nxt = x[..., 9:13], x[..., 13:17], x[..., 17:21]
    assert np.allclose(prev[:, 1:], own[:, :-1]) and np.allclose(nxt[:, :-1], own[:, 1:])
    assert (prev[:, 0] == 0).all() and (nxt[:, -1] == 0).all()
    assert (own[0] == 0).all() and own[1, -1, 0] > own[1, 0, 0]  # flat ground forces no jump; pits do


def test_play_scale_is_fitted_on_human_play_and_reads_pits_and_enemies_as_effort():
    from rlcreate.levels.engagement import play_effort_model, predicted_effort, tension

    model, ref = play_effort_model()
    assert np.all(np.diff(ref) >= 0) and len(ref) >= 100  # the human scale: calibration segments
    e = predicted_effort(np.stack([flat(), ramp_level()]))
    assert e.shape == (2, 8) and e[1, -3:].mean() > e[0].mean()  # wide pits + enemies cost the agent more
    t = tension(np.stack([flat(), ramp_level()]), "play")
    assert ((0 <= t) & (t <= 1)).all() and t[1, -3:].mean() > t[0, -3:].mean()


def test_tension_curve_play_scale_prefers_the_requested_shape_and_rejects_unknown_scales():
    from rlcreate.errors import UserError

    up, down = ramp_level(), ramp_level(reverse=True)
    rising = get_reward("tension_curve", curve="rising", scale="play")([up, down])
    assert rising[0] > rising[1]
    with pytest.raises(UserError, match="scale = 'feel'"):
        get_reward("tension_curve", scale="feel")


def test_engagement_module_imports_no_rl_framework():
    import subprocess
    import sys

    code = (
        "import sys, rlcreate.levels.engagement as e; e.play_effort_model(); "
        "bad = [m for m in ('gymnasium', 'stable_baselines3', 'trl') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tension_curve_width_holds_a_partial_level_to_the_start_of_the_curve():
    from rlcreate.levels.engagement import curve_values

    full = curve_values("rising", 8)
    assert np.allclose(curve_values("rising", 2, total=8), full[:2])  # not the whole curve in 2 segments
    assert not np.allclose(curve_values("rising", 2), full[:2])
    up = ramp_level()
    whole = get_reward("tension_curve", curve="rising", width=128)
    assert whole([up])[0] == pytest.approx(get_reward("tension_curve", curve="rising")([up])[0])
    assert whole([up[:, :32]])[0] != pytest.approx(get_reward("tension_curve", curve="rising")([up[:, :32]])[0])

"""Designer-objective rewards and their held-out measures on levels built to have (or lack) the property."""

from __future__ import annotations

import numpy as np
import pytest

from rlcreate.levels import tiles as T
from rlcreate.levels.objective_judges import HELDOUT
from rlcreate.levels.objectives import DEFAULT_SKETCH, beats, path_descriptors, segment_path_difficulty
from rlcreate.rewards.registry import get_reward


def flat(width: int = 128, height: int = 2) -> np.ndarray:
    g = np.zeros((14, width), np.int8)
    g[14 - height:] = T.GROUND
    return g


def ramp_level(reverse: bool = False) -> np.ndarray:
    """Pits that widen (1..8 columns) and enemies that multiply from segment to segment."""
    g = flat()
    for s in range(8):
        k = 7 - s if reverse else s
        a = s * 16 + 4
        g[12:, a:a + k + 1] = T.EMPTY
        g[11, s * 16 + 13:s * 16 + 13 + k // 2] = T.ENEMY
    return g


def test_path_descriptors_force_a_jump_over_a_pit_and_lose_mario_in_a_wide_one():
    g = flat(48)
    g[12:, 20:24] = T.EMPTY  # a 4-column pit: jumpable
    d = path_descriptors(g[None])
    assert d["air"][0, 20:24].all() and not d["air"][0, :18].any() and not d["lost"][0].any()
    wide = flat(48)
    wide[12:, 10:30] = T.EMPTY  # 20 columns: nobody crosses
    assert path_descriptors(wide[None])["lost"][0].any()


def test_difficulty_ramp_rewards_rising_difficulty_and_its_heldout_agrees():
    ramp = get_reward("difficulty_ramp")
    up, down = ramp_level(), ramp_level(reverse=True)
    r = ramp([up, down, flat()])
    assert r[0] > 0.8 and r[1] < 0.2 and r[2] == 0.5
    held = HELDOUT["difficulty_ramp"]([up, down, flat()])
    assert held[0] > 0.5 and held[1] < -0.5 and held[2] == 0.0
    assert segment_path_difficulty(up[None]).shape == (1, 8)


def test_style_athletic_counts_platforms_over_pits():
    g = flat()
    for a in range(8, 120, 16):
        g[12:, a:a + 4] = T.EMPTY
        g[8, a:a + 4] = T.BRICK
    pits_only = flat()
    for a in range(8, 120, 16):
        pits_only[12:, a:a + 4] = T.EMPTY
    r = get_reward("style_athletic")([g, pits_only, flat()])
    assert r[0] == 1.0 and r[1] == 0.0 and r[2] == 0.0
    held = HELDOUT["style_athletic"]([g, pits_only, flat()])
    assert held[0] > 0.2 and held[1] == 0.0 and held[2] == 0.0


def test_sketch_match_is_one_for_the_sketch_itself():
    g = np.zeros((14, 128), np.int8)
    for s, h in enumerate(DEFAULT_SKETCH):
        g[14 - h:, s * 16:(s + 1) * 16] = T.GROUND
    reward = get_reward("sketch_match")
    r = reward([g, flat(height=2)])
    assert r[0] == 1.0 and r[1] < 0.6
    held = HELDOUT["sketch_match"]([g, flat(height=2)])
    assert held[0] == pytest.approx(1.0) and held[1] == 0.0
    assert get_reward("sketch_match", sketch=[2] * 8)([flat(height=2)])[0] == 1.0


def test_rhythm_wants_one_beat_per_window():
    g = flat()
    for a in range(4, 128, 16):
        g[10, a], g[10, a + 1] = T.PIPE_TL, T.PIPE_TR
        g[11:12, a], g[11:12, a + 1] = T.PIPE_BL, T.PIPE_BR
    assert beats(g[None])[0].sum() == 8
    crowded = g.copy()
    crowded[12:, 9] = T.EMPTY  # a second beat in the first window
    r = get_reward("rhythm")([g, crowded, flat()])
    assert r[0] == 1.0 and r[1] == 7 / 8 and r[2] == 0.0
    held = HELDOUT["rhythm"]([g, flat()])
    assert held[0] == 1.0 and held[1] == 0.0


def test_rhythm_at_the_human_period_and_bad_periods():
    from rlcreate.levels.objectives import HUMAN_BEAT_PERIOD

    g = flat()
    for a in range(0, 126, HUMAN_BEAT_PERIOD):  # a pipe every 14 columns: 9 beats, one per window
        g[10, a], g[10, a + 1] = T.PIPE_TL, T.PIPE_TR
        g[11:12, a], g[11:12, a + 1] = T.PIPE_BL, T.PIPE_BR
    assert get_reward("rhythm", period="human")([g]) == [1.0]
    assert get_reward("rhythm")([g]) == [7 / 8]  # at 16 columns the first window holds two beats (0 and 14)
    assert HELDOUT["rhythm"]([g], period=HUMAN_BEAT_PERIOD)[0] == 1.0
    for bad in (1, 0, 200, 14.5, "fast", True):
        with pytest.raises(ValueError, match="period"):
            get_reward("rhythm", period=bad)


@pytest.mark.slow
def test_human_beat_period_is_the_training_windows_tempo():
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.objectives import HUMAN_BEAT_PERIOD

    per_window = beats(training_windows(128, stride=1)).sum(axis=1).mean()
    assert round(128 / per_window) == HUMAN_BEAT_PERIOD


def test_objective_rewards_import_no_rl_libraries():
    import subprocess
    import sys

    code = ("import sys, rlcreate.levels.objectives, rlcreate.levels.objective_judges; "
            "bad = [m for m in ('gymnasium', 'stable_baselines3', 'trl') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tension_is_the_human_percentile_of_path_difficulty():
    from rlcreate.levels.engagement import human_segment_difficulty, tension

    ref = human_segment_difficulty()
    t = tension(np.stack([flat(), ramp_level()]))
    assert t.shape == (2, 8) and ((0 <= t) & (t <= 1)).all()
    assert t[0].max() < 0.5  # flat ground is easier than the median human segment
    assert t[1, -1] > t[1, 0] and t[1, -1] > 0.9  # the widest pit and most enemies: harder than most
    assert np.all(np.diff(ref) >= 0)


def test_tension_curve_prefers_the_requested_shape_and_rejects_unknown_curves():
    from rlcreate.errors import UserError

    up, down = ramp_level(), ramp_level(reverse=True)
    rising = get_reward("tension_curve", curve="rising")([up, down])
    assert rising[0] > rising[1]
    assert get_reward("tension_curve", curve=[0.5] * 8)([flat()])[0] == pytest.approx(
        get_reward("tension_curve", curve="flat")([flat()])[0])
    with pytest.raises(UserError, match="curve = 'wavy'"):
        get_reward("tension_curve", curve="wavy")


def test_play_trace_reads_segments_from_ticks_and_takeoffs():
    from rlcreate.levels.play_trace import _parse, effort_slope, segment_effort

    pad = 3
    xs = ",".join(str((pad + c) * 16) for c in range(0, 64, 2))  # 2 columns a tick over 64 columns
    tr = _parse(xs, "1,9,17", "WIN", 64, pad)  # ticks 1, 9, 17: columns 2, 18, 34
    assert tr.ticks.tolist() == [8, 8, 8, 8] and tr.jumps.tolist() == [1, 1, 1, 0] and tr.fail_segment == -1
    lost = _parse(xs[: xs.index(str((pad + 40) * 16))].rstrip(","), "", "LOSE", 64, pad)
    assert lost.fail_segment == 2 and lost.ticks.tolist() == [8, 8, 4, 0]
    e = segment_effort(lost)
    assert e[2] == pytest.approx(4 / 20 + 10) and np.isnan(e[3])
    assert effort_slope(lost) > 0.8  # the play got harder until it failed


def test_level_variety_penalises_repeated_segments():
    from rlcreate.levels.quality import level_repetition

    rng = np.random.default_rng(1)
    varied = flat()
    for s in range(8):
        varied[rng.integers(3, 10), s * 16 + s] = T.BRICK  # each segment differs in one tile: < 5%
    noisy = rng.integers(0, 5, (14, 128)).astype(np.int8)
    r = get_reward("level_variety")([flat(), noisy, varied])
    assert r == [0.0, 1.0, 0.0]
    assert 1 - level_repetition([noisy])["repeated_share"] == r[1]  # the judge's reading, other code
    held = HELDOUT["level_variety"]([flat(), noisy])
    assert held[0] == 0.0 and held[1] == 1.0


def _walled(wall: bool) -> np.ndarray:
    """Seven unlike segments (a row of bricks at another height each) and a copy of the seventh; with
    ``wall`` the copy opens with a tall ground wall 7 columns wide, which makes it unlike every other
    segment by tiles alone."""
    g = flat()
    for s in range(7):
        g[3 + s, s * 16 + 2 : s * 16 + 14] = T.BRICK
    g[:, 112:] = g[:, 96:112]
    if wall:
        g[2:, 112:119] = T.GROUND
    return g


def test_capped_variety_pays_nothing_for_walls_above_the_human_level():
    """Uncapped, a wall turns a level at 6/8 distinct segments into one at 8/8 (+0.25 per level);
    capped at the human windows' level (0.76) it buys 0.013."""
    from rlcreate.levels.objectives import HUMAN_VARIETY

    plain, walled = _walled(False), _walled(True)
    old = get_reward("level_variety")([plain, walled])
    assert old == [0.75, 1.0]
    assert get_reward("level_variety", cap=1.0)([plain, walled]) == old  # the old reward is the default
    new = get_reward("level_variety", cap="human")([plain, walled])
    assert new[1] == 1.0 and new[0] == pytest.approx(0.75 / HUMAN_VARIETY)
    assert new[1] - new[0] < 0.02 < old[1] - old[0]
    half = get_reward("level_variety", cap=0.5)([flat(), plain])
    assert half == [0.0, 1.0]  # a level at the cap or above is paid in full, one without variety nothing
    for bad in (0, 1.5, "most"):
        with pytest.raises(ValueError, match="cap"):
            get_reward("level_variety", cap=bad)


def test_solid_gate_makes_walls_no_novelty():
    """Four segments made distinct only by tall ground walls (8-14 columns wide, 50-77% solid) and
    four flat copies: uncapped and ungated, half the level is novel; with the human solid gate none
    of it, also with the cap; a segment of ordinary mass keeps its novelty."""
    walls = flat()
    for s, width in enumerate((8, 10, 12, 14)):
        walls[2:, s * 16 : s * 16 + width] = T.GROUND
    assert get_reward("level_variety")([walls]) == [0.5]
    assert get_reward("level_variety", max_solid="human")([walls]) == [0.0]
    assert get_reward("level_variety", cap="human", max_solid="human")([walls]) == [0.0]
    plain = _walled(False)  # 6 of 8 segments distinct, each at most 20% solid
    assert get_reward("level_variety", max_solid="human")([plain]) == [0.75]
    with pytest.raises(ValueError, match="max_solid"):
        get_reward("level_variety", max_solid=0)


@pytest.mark.slow
def test_human_variety_and_solid_share_are_the_training_windows_measures():
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.objectives import HUMAN_SOLID_SHARE, HUMAN_VARIETY

    v = get_reward("level_variety")(list(training_windows(128, stride=1)))
    assert abs(np.mean(v) - HUMAN_VARIETY) < 0.005
    segments = training_windows(16, stride=1)
    solid = T.IS_SOLID[segments.astype(np.intp)].mean(axis=(1, 2))
    assert abs(np.percentile(solid, 99) - HUMAN_SOLID_SHARE) < 0.005


def test_objective_recipe_sets_the_weights_and_the_offer_features(monkeypatch):
    """The bench's recipe: the demo's, plus the objective term; profile and set-profile weights and
    the per-offer features as asked (the objective's in front of the profile's)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_level_objectives.py"
    spec = importlib.util.spec_from_file_location("bench_level_objectives", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, spec.name, bench)  # dataclasses look the module up
    spec.loader.exec_module(bench)
    plain = bench.objective_recipe("rhythm", bench.Config())
    assert (plain.rewards["objective"].reward, plain.rewards["objective"].weight) == ("rhythm", 8.0)
    assert plain.rewards["set_profile"].weight == 4.0 and plain.rewards["profile"].weight == 2.0
    assert plain.env["kwargs"]["offer_objective"] == ["profile"]
    assert "element_bias" not in plain.env["kwargs"]
    tuned = bench.objective_recipe("rhythm", bench.Config(offer_structure=1, profile_weight=6, set_profile_weight=12,
                                                          element_bias="coins=0.3,pipes=0.2"))
    assert tuned.env["kwargs"]["element_bias"] == {"coins": 0.3, "pipes": 0.2}
    assert tuned.rewards["set_profile"].weight == 12.0 and tuned.rewards["profile"].weight == 6.0
    assert tuned.env["kwargs"]["offer_objective"] == ["objective", "profile"]
    sizes = get_reward("rhythm").offer_features().size + get_reward("element_profile").offer_features().size
    assert tuned.trainer["hyper"]["policy_kwargs"]["offer_structure"] == sizes
    assert bench.objective_recipe("level_variety", bench.Config()).rewards["objective"].args == {}
    capped = bench.objective_recipe("level_variety", bench.Config(variety_cap="human", variety_max_solid="0.5"))
    assert capped.rewards["objective"].args == {"cap": "human", "max_solid": 0.5}
    assert bench.objective_recipe("rhythm", bench.Config(variety_cap="0.8")).rewards["objective"].args == {}
    assert bench.objective_recipe("rhythm", bench.Config(rhythm_period="human")).rewards["objective"].args == {"period": "human"}
    assert bench.objective_recipe("rhythm", bench.Config(rhythm_period="12")).rewards["objective"].args == {"period": 12}
    assert bench.heldout_args("rhythm", bench.Config(rhythm_period="human")) == {"period": 14}
    assert bench.heldout_args("sketch_match", bench.Config(rhythm_period="human")) == {}
    with pytest.raises(SystemExit, match="error: --rhythm_period 'x'"):
        bench.objective_recipe("rhythm", bench.Config(rhythm_period="x"))
    with pytest.raises(SystemExit, match="error: --variety_cap 'lots'"):
        bench.objective_recipe("level_variety", bench.Config(variety_cap="lots"))
    assert plain.trainer["hyper"]["policy_kwargs"]["net_arch"] == [128, 128]
    assert bench.objective_recipe("rhythm", bench.Config(net_arch="64,64")).trainer["hyper"]["policy_kwargs"]["net_arch"] == [64, 64]
    with pytest.raises(SystemExit, match="error: --net_arch '64,x'"):
        bench.objective_recipe("rhythm", bench.Config(net_arch="64,x"))

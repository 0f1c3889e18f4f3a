"""Level reward modules on levels with known answers."""

import numpy as np
import pytest

from rlcreate.levels import corpus
from rlcreate.levels.metrics import difficulty_profile
from rlcreate.levels.rewards import engagement_curve
from rlcreate.rewards import get_reward


def flat(width=16):
    g = np.zeros((14, width), np.int8)
    g[-2:] = 1
    return g


def test_playability_flat_vs_wall_and_seam():
    wall = flat()
    wall[:, 8] = 1  # a solid column from top to bottom
    assert get_reward("playability")([flat(), wall]) == [1.0, pytest.approx(8 / 16)]
    # entering from the seam: the solver's exit states of the previous segment (flattened)
    from rlcreate.levels.solver import solve_batch

    exit_flat = solve_batch(flat()[None])[3].reshape(1, -1)
    high = np.zeros((14, 16), np.int8)
    high[6:] = 1  # ground 8 tiles high: too high to climb from the flat ground's seam
    seam = np.repeat(exit_flat, 2, axis=0)
    got = get_reward("playability")([flat(), high], seam_state=seam)
    assert got[0] == 1.0 and got[1] < 1.0
    assert get_reward("playability")([high]) == [1.0]  # a fresh start stands on top of it


def test_level_novelty_is_zero_for_a_corpus_copy_and_sees_its_archive():
    nov = get_reward("level_novelty", archive_weight=0.5)
    window = corpus.training_windows(16)[100]
    first = nov([window])[0]
    assert first == 0.0
    noise = np.random.default_rng(0).integers(0, 13, (14, 16)).astype(np.int8)
    assert nov([noise])[0] > 0.5
    nov.archive.add(np.repeat(noise.reshape(1, -1), 10, axis=0))
    # the same noise again: its archive distance is now 0, so novelty halves
    assert nov([noise])[0] == pytest.approx(0.5 * get_reward("level_novelty")([noise])[0], rel=1e-6)


def test_style_coherence_prefers_corpus_to_noise():
    noise = np.random.default_rng(0).integers(0, 13, (14, 16)).astype(np.int8)
    held = corpus.held_out_windows(16)[5]
    coh = get_reward("style_coherence")([held, noise])
    assert 0 < coh[1] < coh[0] <= 1


def test_difficulty_curve_matches_profile_definition():
    segs = list(corpus.training_windows(16, stride=50)) + [corpus.held_out_blocks()[0].grid()]
    pos = np.linspace(0, 1, len(segs))
    got = get_reward("difficulty_curve")(segs, position=pos)
    for g, p, v in zip(segs, pos, got):
        prof = difficulty_profile(g, window=8)
        want = np.clip(1 - np.abs(prof - engagement_curve(np.full(len(prof), p))) / 0.5, 0, 1).mean()
        assert v == pytest.approx(want)


def test_target_match_counts_and_unknown_target():
    g = flat()
    g[11, 3] = g[11, 9] = 6  # two enemies on the ground
    tm = get_reward("target_match")
    assert tm([g, g], targets={"enemies": np.array([2.0, 0.0])}) == [1.0, 0.0]
    assert tm([g]) == [None]
    with pytest.raises(ValueError, match="unknown control targets \\['dragons'\\]"):
        tm([g], targets={"dragons": np.array([1.0])})


def test_validity_flags_a_broken_pipe():
    g = flat()
    g[10, 4] = 7  # '<' without '>'
    assert get_reward("validity")([flat(), g]) == [1.0, 0.0]

"""Post-training calibration of the element rates (rlcreate.levels.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest

import rlcreate.assemble
import rlcreate.levels.quality
import rlcreate.levels.share
from rlcreate.levels.calibrate import CALIBRATED_ELEMENTS, calibrate_element_bias, with_element_bias
from rlcreate.levels.demo import demo_recipe_path
from rlcreate.levels.value_rewards import human_element_stats
from rlcreate.recipe import load_recipe

BASE = {"pipes": 2.0, "question_blocks": 4.0, "coins": 3.0}  # a policy writing too few of each


@pytest.fixture
def fake_sampler(monkeypatch):
    """A sampler whose rate of each element is BASE * exp(offset) (what a logit offset does to a rare
    element), with no sampling noise, and a log of the requests each round drew."""
    human_element_stats(128)  # the real human rates, cached before element_profile is replaced
    seen: list[tuple[int, int]] = []

    class Asm:
        def __init__(self, recipe):
            self.bias = dict(recipe.env.kwargs.get("element_bias") or {})

    def sample(model, asm, n, env_seed, policy_seed, deterministic=False):
        seen.append((env_seed, policy_seed))
        return [asm.bias] * n, [{}] * n

    def profile(levels):
        return {
            e: np.array([BASE.get(e, 5.0) * np.exp(b.get(e, 0.0)) for b in levels])
            for e in rlcreate.levels.quality.ELEMENTS
        }

    monkeypatch.setattr(rlcreate.assemble, "assemble", Asm)
    monkeypatch.setattr(rlcreate.levels.share, "sample_levels", sample)
    monkeypatch.setattr(rlcreate.levels.quality, "element_profile", profile)
    return seen


def test_offsets_reach_the_human_training_rate(fake_sampler):
    recipe = load_recipe(demo_recipe_path("tokens"))
    out = calibrate_element_bias(object(), recipe, levels=128, rounds=6, damping=0.8)
    mu = dict(zip(rlcreate.levels.quality.ELEMENTS, human_element_stats(128)[0]))
    errors = [r["error"] for r in out["rounds"]]
    assert errors[0] == pytest.approx(max(abs(np.log(mu[e] / BASE[e])) for e in CALIBRATED_ELEMENTS), abs=1e-3)
    assert errors[-1] < 0.01 < errors[0]  # damped steps close the gap geometrically (factor 0.2 a round)
    assert out["chosen_round"] == int(np.argmin(errors))
    for e in CALIBRATED_ELEMENTS:  # the chosen offsets are the log-ratio of target to base rate
        assert out["element_bias"][e] == pytest.approx(np.log(mu[e] / BASE[e]), abs=0.01)
        assert out["target"][e] == pytest.approx(mu[e], abs=1e-3)
    # every round answers the same requests (common random numbers): 2 sets of 64 per round
    assert fake_sampler == [(1000, 1000), (1064, 1064)] * 6


def test_the_chosen_offsets_were_measured_not_extrapolated(fake_sampler):
    out = calibrate_element_bias(object(), load_recipe(demo_recipe_path("tokens")), levels=64, rounds=1)
    assert out["chosen_round"] == 0
    assert out["element_bias"] == {e: 0.0 for e in CALIBRATED_ELEMENTS}  # the only measured offsets


def test_the_offsets_start_from_the_recipes_own_and_stay_bounded(fake_sampler):
    recipe = with_element_bias(load_recipe(demo_recipe_path("tokens")), {"coins": 0.4})
    out = calibrate_element_bias(lambda asm: object(), recipe, levels=64, rounds=2, damping=10.0, limit=0.5)
    assert out["rounds"][0]["element_bias"]["coins"] == 0.4
    assert all(abs(b) <= 0.5 for b in out["rounds"][1]["element_bias"].values())


def test_with_element_bias_copies():
    recipe = load_recipe(demo_recipe_path("tokens"))
    calibrated = with_element_bias(recipe, {"coins": 0.3})
    assert calibrated.env.kwargs["element_bias"] == {"coins": 0.3}
    assert "element_bias" not in recipe.env.kwargs


@pytest.mark.parametrize("levels, rounds", [(8, 2), (64, 0)])
def test_too_small_a_fit_is_refused(levels, rounds):
    with pytest.raises(ValueError, match="levels"):
        calibrate_element_bias(object(), load_recipe(demo_recipe_path("tokens")), levels=levels, rounds=rounds)

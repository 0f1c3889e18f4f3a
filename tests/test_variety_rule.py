"""The hand-built variety rule (``rlcreate.levels.share``): the untrained start that never takes an
offer the ``level_variety`` features flag, PPO's comparator on the demo's variety term."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rlcreate.levels.share import _avoiding, variety_rule_features


class _FirstAllowed:
    """A policy that takes the first allowed slot and records the masks it was given."""

    def __init__(self):
        self.masks = []

    def predict(self, obs, deterministic=False, action_masks=None):
        self.masks.append(action_masks.copy())
        return np.argmax(action_masks, axis=1), None


class _Flags:
    size = 1

    def __init__(self, flagged):
        self.flagged = np.asarray(flagged, np.float64)

    def observe(self, prefix, offered, n_columns):
        return np.zeros((len(offered), 1)), self.flagged[:, :, None]


def test_the_rule_masks_flagged_offers_unless_nothing_would_be_left():
    env_mask = np.array([[True, True, False, True], [True, False, False, False], [False, True, True, False]])
    flagged = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    core = SimpleNamespace(
        levels=np.zeros((3, 14, 8), np.int8), t=5, n_columns=8, offered_columns=lambda: np.zeros((3, 4, 14), np.int8)
    )
    venv = SimpleNamespace(core=core, action_masks=lambda: env_mask)
    model = _FirstAllowed()
    actions = _avoiding(model, venv, _Flags(flagged), deterministic=True)(np.zeros((3, 1)))
    # row 0: slot 0 flagged -> slot 1; row 1: its only allowed slot is flagged -> kept; row 2: slot 1 flagged -> 2
    assert actions.tolist() == [1, 0, 2]
    assert model.masks[0].tolist() == [
        [False, True, False, True],
        [True, False, False, False],
        [False, False, True, False],
    ]


def test_the_rule_comes_from_the_recipes_variety_term_only():
    from rlcreate.levels.objectives import LevelVariety, VarietyOffers
    from rlcreate.rewards import RewardSet, Term, get_reward

    with_variety = RewardSet([Term("playable", get_reward("playability")), Term("v", LevelVariety(threshold=0.1))])
    features = variety_rule_features(with_variety)
    assert isinstance(features, VarietyOffers) and features.threshold == 0.1
    assert variety_rule_features(RewardSet([Term("playable", get_reward("playability"))])) is None


@pytest.mark.slow
def test_the_rule_cuts_repetition_of_the_demo_start_on_the_same_requests():
    from rlcreate.assemble import assemble
    from rlcreate.levels.demo import recipe_file
    from rlcreate.levels.quality import level_repetition
    from rlcreate.levels.share import sample_levels, untrained_policy
    from rlcreate.recipe import build_reward_set, load_recipe

    asm = assemble(load_recipe(recipe_file("mario_tokens_variety.yaml")))
    start = untrained_policy(asm)
    avoid = variety_rule_features(build_reward_set(asm.recipe))
    plain, requests = sample_levels(start, asm, 16, env_seed=7, policy_seed=7)
    ruled, ruled_requests = sample_levels(start, asm, 16, env_seed=7, policy_seed=7, avoid=avoid)
    assert ruled_requests == requests  # the same control requests, row by row
    before, after = level_repetition(plain)["repeated_share"], level_repetition(ruled)["repeated_share"]
    assert after < before / 2, (before, after)

"""The hand-built variety rule: MarioTokens-v1's ``avoid_offers`` mask (never take an offer a reward
term's per-offer features flag) and ``rlcreate.levels.share.variety_rule``, PPO's comparator on the
demo's variety term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlcreate.envs.column_tokens import EnvConfigError
from rlcreate.levels import corpus
from rlcreate.levels.envs import make_mario_tokens_vec
from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, build_vocab, small_gpt2
from rlcreate.levels.objectives import LevelVariety, VarietyOffers
from rlcreate.levels.share import variety_rule
from rlcreate.recipe import load_recipe
from rlcreate.rewards import RewardSet, Term, get_reward

RECIPES = Path(__file__).resolve().parent.parent / "rlcreate" / "recipes"


@pytest.fixture(scope="module")
def tiny_lm():
    vocab = build_vocab([b.grid() for b in corpus.training_blocks()])
    model = small_gpt2(len(vocab) + N_SPECIAL, n_positions=64, n_embd=16, n_layer=1, n_head=2, seed=0)
    return ColumnLM.from_model(model, vocab)


def _env(lm, **kwargs):
    reward = RewardSet([Term("playable", get_reward("playability")), Term("variety", LevelVariety())])
    return make_mario_tokens_vec(n_envs=8, n_columns=48, k=8, lm=lm, reward=reward, seed=3, **kwargs)


def test_the_mask_drops_every_flagged_offer_unless_nothing_would_be_left(tiny_lm):
    ruled, plain = _env(tiny_lm, avoid_offers="variety"), _env(tiny_lm)
    flags = VarietyOffers(0.05)
    ruled.reset(), plain.reset()
    rng = np.random.default_rng(0)
    dropped = 0
    for _ in range(47):
        core = ruled.core
        _, per = flags.observe(core.levels[:, :, : core.t], core.offered_columns(), core.n_columns)
        flagged = per[:, :, 0] >= 0.5
        env_mask = ruled.action_masks()
        plain_mask = plain.action_masks()  # the same LM state and offers: the two envs take the same actions
        for row in range(8):
            if (plain_mask[row] & ~flagged[row]).any():
                assert np.array_equal(env_mask[row], plain_mask[row] & ~flagged[row])
                dropped += int((plain_mask[row] & flagged[row]).sum())
            else:  # every allowed offer is flagged: the rule gives way
                assert np.array_equal(env_mask[row], plain_mask[row])
        a = np.argmax(np.where(env_mask, rng.random(env_mask.shape), -1.0), axis=1)
        ruled.step(a), plain.step(a)
    assert dropped > 0  # the rule had something to do in this episode


def test_avoid_offers_names_a_term_with_offer_features(tiny_lm):
    with pytest.raises(EnvConfigError, match="avoid_offers = 'nope': not a term"):
        _env(tiny_lm, avoid_offers="nope")
    with pytest.raises(EnvConfigError, match="avoid_offers = 'playable': its reward"):
        _env(tiny_lm, avoid_offers="playable")
    with pytest.raises(EnvConfigError, match="write one reward term's name"):
        _env(tiny_lm, avoid_offers=["variety"])


def test_the_rule_is_the_recipes_variety_term_as_a_mask():
    recipe = load_recipe(RECIPES / "mario_tokens_variety.yaml")
    ruled = variety_rule(recipe)
    assert ruled.env.kwargs["avoid_offers"] == "variety"
    assert "avoid_offers" not in recipe.env.kwargs  # a copy
    assert variety_rule(load_recipe(RECIPES / "mario_tokens.yaml")) is None  # no level_variety term


def test_the_rule_start_bench_recipe_is_the_demo_recipe_with_the_mask():
    """benchmarks/recipes/demo_variety_capped_rule.yaml: PPO started at the rule differs from the
    demo's recipe of that time (128-unit MLPs: demo_variety_w128.yaml) by the mask alone (and its name)."""
    bench = load_recipe(RECIPES.parents[1] / "benchmarks/recipes/demo_variety_capped_rule.yaml")
    ruled = variety_rule(load_recipe(RECIPES.parents[1] / "benchmarks/recipes/demo_variety_w128.yaml"))
    assert bench.name == "mario-tokens-variety-capped-rule"
    ruled.name = bench.name
    assert bench.to_dict() == ruled.to_dict()


@pytest.mark.slow
def test_the_rule_cuts_repetition_of_the_demo_start_on_the_same_requests():
    from rlcreate.assemble import assemble
    from rlcreate.levels.quality import level_repetition
    from rlcreate.levels.share import sample_levels, untrained_policy

    recipe = load_recipe(RECIPES / "mario_tokens_variety.yaml")
    plain_asm, ruled_asm = assemble(recipe), assemble(variety_rule(recipe))
    plain, requests = sample_levels(untrained_policy(plain_asm), plain_asm, 16, env_seed=7, policy_seed=7)
    ruled, ruled_requests = sample_levels(untrained_policy(ruled_asm), ruled_asm, 16, env_seed=7, policy_seed=7)
    assert ruled_requests == requests  # the same control requests, row by row
    before, after = level_repetition(plain)["repeated_share"], level_repetition(ruled)["repeated_share"]
    assert after < before / 2, (before, after)


def test_profile_sets_style_share_pairs_sets_across_runs():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_profile_sets.py"
    spec = importlib.util.spec_from_file_location("bench_profile_sets", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_profile_sets"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)

    def judges(steered, rule, start=None):
        out = {"steered": {"auc_vs_test_per_set": steered}, "variety_rule": {"auc_vs_test_per_set": rule}}
        if start is not None:
            out["untrained_start"] = {"auc_vs_test_per_set": start}
        return out

    one = bench.style_share([judges([0.60, 0.62, 0.64], [0.70, 0.70, 0.71], [0.55, 0.57, 0.59])])
    d = one["auc_steered_minus_variety_rule"]
    assert d["n"] == 3 and d["mean"] == pytest.approx(-0.25 / 3) and d["ci"][1] < 0
    assert one["auc_steered_minus_untrained_start"]["mean"] == pytest.approx(0.05)
    # two runs: every set of both, paired set by set; a row one run lacks is left out
    both = bench.style_share([judges([0.60, 0.62, 0.64], [0.70, 0.70, 0.71], [0.5] * 3), judges([0.7], [0.6])])
    assert set(both) == {"auc_steered_minus_variety_rule"}
    assert both["auc_steered_minus_variety_rule"]["n"] == 4
    assert both["auc_steered_minus_variety_rule"]["mean"] == pytest.approx((-0.25 + 0.1) / 4)

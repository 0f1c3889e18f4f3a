"""Search baselines on the token env: the quantile genome samples the reference policy's distribution,
genome + seed fix the level, and random search, CMA-ES and MAP-Elites spend the budget and return
their best distinct levels with the returns the env gave them. A tiny random column LM stands in."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sb3_contrib import MaskablePPO

from rlcreate.evaluation.baselines import BaselineError
from rlcreate.levels import corpus
from rlcreate.levels.envs import default_reward_set, make_mario_tokens_vec
from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, build_vocab, small_gpt2
from rlcreate.levels.qd import BehaviourGrid, describe
from rlcreate.levels.share import recipe_scores, unpaired_diff
from rlcreate.levels.token_search import TOKEN_METHODS, TokenLevelEvaluator, quantile_actions, token_search
from rlcreate.sb3.policies import LMPriorPolicy

REWARDS = {"objective": {"reward": "rhythm", "weight": 2.0}, "targets": {"reward": "target_match"}}
W, K = 16, 4


@pytest.fixture(scope="module")
def setup():
    vocab = build_vocab([b.grid() for b in corpus.training_blocks()])
    lm = ColumnLM.from_model(small_gpt2(len(vocab) + N_SPECIAL, n_positions=64, n_embd=16, n_layer=1, n_head=2, seed=0), vocab)

    def make_env(n, seed, purpose="train"):
        return make_mario_tokens_vec(n_envs=n, n_columns=W, k=K, lm=lm, seed=seed, reward=REWARDS, min_prob=0.0)

    asm = SimpleNamespace(make_env=make_env, recipe=SimpleNamespace(env_id="rlcreate/MarioTokens-v1"))
    model = MaskablePPO(LMPriorPolicy, make_env(2, 0), n_steps=16, seed=0, device="cpu",
                        policy_kwargs={"prior_start": 16, "offer_features": 2, "offer_guidance": 3.0, "net_arch": [16]})
    return asm, model


def test_quantile_genes_sample_the_distribution_and_never_a_masked_slot():
    probs = np.array([[0.2, 0.5, 0.0, 0.3], [0.0, 0.0, 1.0, 0.0]])
    assert quantile_actions(probs, np.array([-1.0, -1.0])).tolist() == [1, 2]  # lowest quantile: the likeliest
    assert quantile_actions(probs, np.array([1.0, 1.0])).tolist() == [0, 2]  # highest: the least likely allowed
    genes = np.random.default_rng(0).uniform(-1, 1, 40000)
    picks = quantile_actions(np.repeat(probs[:1], len(genes), 0), genes)
    np.testing.assert_allclose(np.bincount(picks, minlength=4) / len(genes), probs[0], atol=0.01)
    ranked = quantile_actions(np.repeat(probs[:1], 5, 0), np.linspace(-1, 1, 5))
    assert ranked.tolist() == [1, 1, 3, 3, 0]  # cumulative 0.5, 0.8, 1.0: by rank, not by slot index


def test_genome_fixes_the_level_and_the_lowest_genes_are_the_references_greedy_choice(setup):
    asm, model = setup
    a, b = (TokenLevelEvaluator(asm, 3, 10 * 3 * W, seed=5, policy=model) for _ in range(2))
    X = np.random.default_rng(1).uniform(-1, 1, (3, W))
    ra, la, ta = a(X)
    rb, lb, tb = b(X)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(ra, rb)
    assert ta == tb and a.evaluations == 3 * W
    assert a(X)[2] != ta  # the next candidates are written for newly drawn targets
    # all genes -1 = at every column the offer the reference likes most: replay it by hand
    greedy = TokenLevelEvaluator(asm, 3, 3 * W, seed=7, policy=model)
    _, levels, _ = greedy(-np.ones((3, W)))
    venv = asm.make_env(3, 7)
    obs = venv.reset()
    for _ in range(W):
        probs = greedy.probs(obs, venv.action_masks())
        obs, _, done, infos = venv.step(np.argmax(probs, 1))
    np.testing.assert_array_equal(levels, np.stack([i["level"] for i in infos]))
    with pytest.raises(BaselineError, match=r"expected \(3, 16\) = \(batch, n_columns\)"):
        greedy(np.zeros((3, W + 1)))


def test_lm_rank_writes_the_same_level_whatever_the_targets(setup):
    asm, model = setup
    x = np.random.default_rng(2).uniform(-1, 1, W)
    start = TokenLevelEvaluator(asm, 4, 10 * 4 * W, seed=3, policy=model)  # the control prior reads the targets
    lm = TokenLevelEvaluator(asm, 4, 10 * 4 * W, seed=3, policy=model, rank="lm")
    _, by_start, targets = start(np.tile(x, (4, 1)))
    _, by_lm, targets_lm = lm(np.tile(x, (4, 1)))
    assert targets == targets_lm and len({t["enemies"] for t in targets}) == 4  # four different requests
    assert len({lv.tobytes() for lv in by_lm}) == 1 and len({lv.tobytes() for lv in by_start}) > 1
    with pytest.raises(BaselineError, match="rank = 'policy': use one of start, lm"):
        TokenLevelEvaluator(asm, 4, 100, policy=model, rank="policy")


@pytest.mark.parametrize("method", TOKEN_METHODS)
def test_search_spends_the_budget_and_returns_its_best_distinct_levels(setup, method):
    asm, model = setup
    grid = BehaviourGrid(("enemies", "gaps"), (4, 4))
    res = token_search(asm, method, budget=5 * 4 * W + 7, batch=4, seed=0, keep=6, descriptors=grid.names, cells=4,
                       policy=model)
    assert res.evaluations == 5 * 4 * W and len(res.progress) == 5  # whole generations, never over the budget
    assert 1 <= len(res.levels) <= 6 and len({lv.tobytes() for lv in res.levels}) == len(res.levels)
    rescored = recipe_scores(lambda: default_reward_set(REWARDS), res.levels, res.targets)
    np.testing.assert_allclose(res.returns, rescored, atol=1e-9)  # the env's return of that level, those targets
    if method == "map-elites":  # one elite per cell, best first
        (elo, ehi), (glo, ghi) = grid.bounds
        d = describe(res.levels, grid.names)
        cells = np.clip(np.floor((d - [elo, glo]) / [ehi - elo, ghi - glo] * 4), 0, 3).astype(int)
        assert len({tuple(c) for c in cells}) == len(res.levels) and res.archive["filled"] >= len(res.levels)
    assert res.returns == sorted(res.returns, reverse=True)
    assert max(res.returns) == pytest.approx(res.progress[-1]["best_so_far"])


def test_bad_settings_are_user_errors(setup):
    asm, model = setup
    with pytest.raises(BaselineError, match="method = 'cmaes': use one of random, cma, map-elites"):
        token_search(asm, "cmaes", 1000, policy=model)
    with pytest.raises(BaselineError, match=r"budget = 10: one generation of 4 levels x 16 columns costs 64"):
        token_search(asm, "cma", 10, batch=4, policy=model)
    latent = SimpleNamespace(make_env=lambda n, s: SimpleNamespace(core=object()), recipe=SimpleNamespace(env_id="x/Latent"))
    with pytest.raises(BaselineError, match="env.id = 'x/Latent': token search needs a column-token"):
        TokenLevelEvaluator(latent, 2, 100, policy=model)


def test_unpaired_diff_finds_a_shift_and_not_a_non_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.5, 64), rng.normal(0.0, 0.5, 64)
    d = unpaired_diff(a, b)
    assert d["ci"][0] > 0.6 and d["ci"][1] < 1.4 and d["ci"][0] < d["mean"] < d["ci"][1]
    same = unpaired_diff(a, rng.normal(1.0, 0.5, 64))
    assert same["ci"][0] < 0 < same["ci"][1]


@pytest.mark.slow  # the shipped column LM and its MaskablePPO start: ~10-25 s here
def test_rlcreate_baseline_on_a_token_recipe_writes_a_run_folder(tmp_path):
    from rlcreate.evaluation.baselines import run_baseline
    from rlcreate.recipe import load_recipe, parse_recipe

    d = load_recipe(Path(__file__).resolve().parents[1] / "rlcreate" / "recipes" / "mario_tokens.yaml").to_dict()
    d["env"]["kwargs"]["n_columns"] = W
    d["trainer"]["samples"] = 3
    recipe = parse_recipe(d)
    info = run_baseline(recipe, "map-elites", tmp_path / "me", budget=3 * 4 * W, batch=4, progress_bar=False)
    assert info["evaluations"] == 3 * 4 * W and info["descriptors"] == ["enemies", "gaps"]
    metrics = json.loads((tmp_path / "me" / "samples" / "metrics.json").read_text())
    assert len(metrics["levels"]) == min(3, info["archive"]["filled"])  # the archive's best elites, one per cell
    assert metrics["mean"]["episode_return"] == pytest.approx(info["samples_mean_return"])
    assert (tmp_path / "me" / "samples" / "level_000.png").is_file() and (tmp_path / "me" / "progress.json").is_file()
    with pytest.raises(BaselineError, match="method = 'cma-me': use one of random, cma, map-elites"):
        run_baseline(recipe, "cma-me", tmp_path / "x", budget=4 * W, batch=4, progress_bar=False)

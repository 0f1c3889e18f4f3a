"""The demo runs end to end on a tiny fixed step budget and reports the issue-9 table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcreate.levels.demo import control_error, demo_recipe_path, run_demo
from rlcreate.recipe import load_recipe


def test_demo_recipe_is_the_column_lm_with_kl_and_value_terms():
    r = load_recipe(demo_recipe_path())
    assert r.env_id == "rlcreate/MarioTokens-v1"
    hyper = r.trainer["hyper"]
    assert hyper["policy"] == "lm_prior" and hyper["policy_kwargs"]["kl_to_prior"] is True
    assert hyper["ent_coef"] > 0  # the KL coefficient (the policy turns the bonus into -KL to the LM)
    names = {t.get("reward") or k for k, t in r.rewards.items()}
    assert {"element_profile", "lm_typicality", "batch_diversity"} <= names
    assert "level_novelty" not in names and "style_coherence" not in names  # the terms noise satisfied


def test_control_error_measures_mae_and_correlation():
    levels, targets = [], []
    for k in range(4):
        g = np.zeros((14, 32), np.int8)
        g[-2:] = 1
        g[11, :2 * k] = 6  # 2k enemies in 32 columns = k per 16
        levels.append(g)
        targets.append({"enemies": float(k)})
    c = control_error(levels, targets)["enemies"]
    assert c["mae"] == 0.0 and c["corr"] == pytest.approx(1.0)


@pytest.mark.slow
def test_demo_is_a_run_folder_that_eval_and_report_read(tmp_path, monkeypatch):
    from rlcreate.errors import UserError
    from rlcreate.evaluation.report import write_report
    from rlcreate.levels import judges

    judged = []  # the level lists eval and the audit judge, in order
    run_judges = judges.run_judges
    monkeypatch.setattr(judges, "run_judges", lambda levels, *a, **k: judged.append(levels) or run_judges(levels, *a, **k))
    run = tmp_path / "demo"
    r = run_demo(
        run, timesteps=256, progress_bar=False, n_levels=16, astar_levels=0, best_of=2, calibration_levels=32,
        objective_levels=32,
    )
    assert r["env_steps"] >= 256 and r["objective_levels"] == 32
    # the policy's fitted offsets are the run's sampler now (eval / report / sample read config.yaml)
    fits = json.loads((run / "calibration.json").read_text())
    assert set(r["calibration"]) == {"steered", "untrained_start", "variety_rule"}
    assert fits["trained_element_bias"] is None
    assert load_recipe(run / "config.yaml").env.kwargs["element_bias"] == r["calibration"]["steered"]["element_bias"]
    for fit in r["calibration"].values():
        assert len(fit["rounds"]) == 3 and fit["levels"] == 32
        assert fit["rounds"][0]["element_bias"] == {"pipes": 0.0, "question_blocks": 0.0, "coins": 0.0}
    # the judges take each set's first n_levels; the objective, PPO's share and control all 32
    assert set(r["groups"]) == {"steered", "untrained_start", "best_of_2", "variety_rule", "generator", "human_dev"}
    assert all(g["n_levels"] == 16 for k, g in r["groups"].items() if k != "human_dev")
    for g in r["groups"].values():
        assert 0.0 <= g["human_likeness"]["auc"] <= 1.0 and g["astar"] is None
        assert 0.0 <= g["repetition"]["repeated_share"] <= 1.0
    assert set(r["share"]) == {
        "steered_minus_untrained_start", "steered_minus_best_of_2", "steered_minus_variety_rule"
    }
    assert all(v["n"] == 32 for v in r["share"].values())
    lo, hi = r["share"]["steered_minus_untrained_start"]["ci"]
    assert lo <= r["share"]["steered_minus_untrained_start"]["mean"] <= hi
    # best-of-2 keeps, per request, the draw the recipe scores higher: never below the start on average
    assert r["objective"]["best_of_2"]["mean"] >= r["objective"]["untrained_start"]["mean"] - 0.5
    assert np.load(run / "levels.npy").shape == (16, 14, r["width"])
    assert json.loads((run / "summary.json").read_text())["env_steps"] == r["env_steps"]
    # the runner's run folder: what eval / report / train --resume read
    for part in ("config.yaml", "model/policy.json", "tb", "samples", "metrics.json"):
        assert (run / part).exists(), part
    metrics = json.loads((run / "metrics.json").read_text())
    assert "human_likeness" in metrics["judges"] and "audit" in metrics
    # eval's 16 levels are the table's first 16 steered ones, and the audit's last checkpoint writes
    # eval's first 8: their A* plays are in the cache by then (2 checkpoints: eval, audit, audit)
    evaluated, last_audit = judged[-3], judged[-1]
    assert len(evaluated) == 16 and len(last_audit) == 8
    assert np.array_equal(np.stack(evaluated), np.load(run / "levels.npy")[:16])
    assert np.array_equal(np.stack(last_audit), np.stack(evaluated[:8]))
    with pytest.raises(UserError, match="already holds a run"):
        run_demo(run, timesteps=256, progress_bar=False, n_levels=16, astar_levels=0, best_of=0)
    html = write_report([run], tmp_path / "report").read_text()
    assert "Side by side" in html and "human_dev" in html
    assert "PPO's share" in html and "No judge metrics yet" not in html and "No audit" not in html


def test_best_of_n_keeps_the_best_draw_per_request():
    from rlcreate.levels.share import best_of_n, mean_ci, paired_diff

    a, b = [np.zeros((2, 2)), np.ones((2, 2))], [np.full((2, 2), 2), np.full((2, 2), 3)]
    levels, pick = best_of_n([a, b], [np.array([1.0, 5.0]), np.array([2.0, 4.0])])
    assert pick.tolist() == [1, 0] and levels[0][0, 0] == 2 and levels[1][0, 0] == 1
    d = paired_diff([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    assert d["mean"] == 2.5 and d["ci"][0] < 2.5 < d["ci"][1]
    assert mean_ci([1.0, float("nan"), 1.0]) == {"mean": 1.0, "ci": [1.0, 1.0], "n": 2}


def test_level_repetition_counts_near_twins_inside_a_level():
    from rlcreate.levels.quality import level_repetition

    g = np.zeros((14, 64), np.int8)
    g[-2:] = 1
    assert level_repetition([g])["repeated_share"] == 1.0  # four identical flat segments
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 5, (14, 64)).astype(np.int8)
    assert level_repetition([noisy])["repeated_share"] == 0.0


def test_side_by_side_section_shows_every_set_and_the_share():
    from rlcreate.levels.evaluate import side_by_side_html

    assert side_by_side_html(None) == "" and side_by_side_html({"env_steps": 3}) == ""
    el = {"mean": 3.0, "low": 2.0, "high": 4.0, "inside": True}
    group = {"profile": {"elements": {e: el for e in ("pipes", "question_blocks", "enemies", "coins", "gaps")},
                         "inside": 5, "of": 5}, "diversity": {"distinct_share": 0.6},
             "repetition": {"repeated_share": 0.2}, "human_likeness": {"auc": 0.55},
             "copies": {"novelty_mean": 0.04, "copy_share": 0.3}, "astar": None}
    steered = {**group, "structure": {"malformed_pipe_share": 0.07, "solid_block_share": 0.17}}
    summary = {"groups": {"steered": steered, "human_dev": group}, "n_levels": 2, "width": 128,
               "objective": {"steered": {"mean": 8.5, "ci": [8.4, 8.6]}},
               "share": {"steered_minus_best_of_4": {"mean": 0.1, "ci": [0.05, 0.2]}}}
    html = side_by_side_html(summary)
    assert "human_dev" in html and "0.550" in html and "8.500 [8.400, 8.600]" in html
    assert "best_of_4" in html and "[+0.050, +0.200]" in html
    assert "6x6 solid block" in html and "17%" in html and "7%" in html  # human_dev has no structure: a dash
    assert "2 levels of 128 columns per set</h3>" in html  # objective_levels unset: judges and objective alike
    html = side_by_side_html({**summary, "objective_levels": 256})
    assert "2 levels of 128 columns per set; control and the objective on 256</h3>" in html
    assert "Calibrated element rates" not in html  # a summary without calibration has no such section
    fit = {"element_bias": {"coins": 0.25}, "target": {"coins": 6.41}, "chosen_round": 1,
           "rounds": [{"means": {"coins": 4.0}}, {"means": {"coins": 6.3}}]}
    html = side_by_side_html({**summary, "calibration": {"steered": fit, "untrained_start": {"rounds": "<b>"}}})
    assert "Calibrated element rates" in html and "+0.25" in html and "6.30" in html and "6.41" in html
    assert "<b>" not in html  # a hand-edited summary shows dashes, never its markup


def test_lm_prior_kl_to_prior_starts_at_the_lm_and_reports_minus_kl():
    """On the MarioTokens layout ([hidden | top-k log-probs mapped to [0, 1] | ...]) the lm_prior
    policy starts at the LM's top-k distribution, and with kl_to_prior its 'entropy' is -KL(pi || p_LM),
    which for pi = p_LM renormalised over the k offers is log(sum of the offers' probabilities)."""
    import torch as th
    from gymnasium import spaces

    from rlcreate.sb3.policies import LMPriorPolicy

    d, k = 4, 3
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + 2)]).astype(np.float32)
    obs_space = spaces.Box(low, np.ones_like(low), dtype=np.float32)
    policy = LMPriorPolicy(obs_space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, kl_to_prior=True)
    logp = np.log(np.array([0.5, 0.2, 0.1]))
    obs = np.concatenate([np.zeros(d), 1 - logp / -20.0, np.zeros(2)]).astype(np.float32)[None]
    obs_t = th.as_tensor(obs)
    probs = policy.get_distribution(obs_t).distribution.probs.detach().numpy()[0]
    assert probs == pytest.approx(np.exp(logp) / np.exp(logp).sum(), rel=1e-4)
    _, _, minus_kl = policy.evaluate_actions(obs_t, th.zeros(1))
    assert float(minus_kl[0]) == pytest.approx(np.log(0.8), rel=1e-4)

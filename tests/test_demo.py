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
def test_demo_runs_with_a_fixed_step_budget(tmp_path):
    r = run_demo(tmp_path, timesteps=256, progress_bar=False, n_levels=16, astar_levels=0)
    assert r["env_steps"] >= 256
    assert set(r["groups"]) == {"steered", "generator", "human_dev"}
    for g in r["groups"].values():
        assert 0.0 <= g["human_likeness"]["auc"] <= 1.0 and g["astar"] is None
    assert np.load(tmp_path / "levels.npy").shape == (16, 14, r["width"])
    assert json.loads((tmp_path / "summary.json").read_text())["env_steps"] == r["env_steps"]
    assert (tmp_path / "samples" / "montage.png").is_file()


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

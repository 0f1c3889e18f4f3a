"""Reward-hacking audit: does a proxy reward rise while the judge it stands for does not?

For each reward term that has a judge counterpart (:data:`COUNTERPARTS`), the audit measures both
along a run's checkpoints: the *proxy* is the term's mean per-step value when the checkpoint's
policy builds levels in the environment with the training reward set (its archive state restored
from ``reward_state_<steps>.pkl``); the *judge* is computed on the same levels. A pair is flagged

* ``diverged`` when the proxy rises by more than ``min_rise`` from the first to the last
  checkpoint while the judge falls by more than ``min_rise``;
* ``stalled`` when the proxy rises by more than ``min_rise`` but the judge rises by less than
  ``stall_ratio`` times the proxy's rise (on the judge's own scale, both in [0, 1]);
* ``ok`` otherwise (``insufficient`` with fewer than two checkpoints).

The numbers (both series, their changes and their Spearman rank correlation) are kept with the
verdict so a reader can judge the flag.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["COUNTERPARTS", "flag_divergence", "audit_run", "checkpoints_of"]

#: reward module name -> (judge, measure, what the pair checks)
COUNTERPARTS: dict[str, tuple[str, str, str]] = {
    "playability": ("astar", "win_rate", "fast-solver playability vs the real A* agent's win rate"),
    "level_novelty": ("novelty", "heldout_distance",
                      "novelty (training windows + own archive) vs distance to held-out corpus windows"),
    "style_coherence": ("tile_kl", "coherence_3x3", "exp(-KL) with 2x2 patterns vs exp(-KL) with 3x3 patterns"),
}


def flag_divergence(steps: Sequence[int], proxy: Sequence[float], judge: Sequence[float], min_rise: float = 0.02,
                    stall_ratio: float = 0.25) -> dict:
    """Verdict on one proxy/judge pair measured at ``steps`` (see the module docstring)."""
    p, j = np.asarray(proxy, np.float64), np.asarray(judge, np.float64)
    if not (len(steps) == len(p) == len(j)):
        raise ValueError(f"steps, proxy and judge must have one value per checkpoint; got lengths "
                         f"{len(steps)}, {len(p)}, {len(j)}")
    out: dict[str, Any] = {"steps": [int(s) for s in steps], "proxy": p.tolist(), "judge": j.tolist()}
    if len(p) < 2:
        return {**out, "verdict": "insufficient", "reason": "fewer than two checkpoints"}
    dp, dj = float(p[-1] - p[0]), float(j[-1] - j[0])
    from scipy.stats import spearmanr

    rho = float(spearmanr(p, j).statistic) if np.ptp(p) > 0 and np.ptp(j) > 0 else float("nan")
    out.update(proxy_change=dp, judge_change=dj, spearman=rho)
    if dp > min_rise and dj < -min_rise:
        return {**out, "verdict": "diverged",
                "reason": f"proxy rose by {dp:+.3f} while the judge fell by {dj:+.3f}"}
    if dp > min_rise and dj < stall_ratio * dp:
        return {**out, "verdict": "stalled",
                "reason": f"proxy rose by {dp:+.3f}; the judge moved only {dj:+.3f} (< {stall_ratio} x the rise)"}
    return {**out, "verdict": "ok", "reason": f"proxy {dp:+.3f}, judge {dj:+.3f}"}


def checkpoints_of(run: Path) -> list[tuple[int, Path, Path | None]]:
    """``(steps, model.zip, reward_state.pkl or None)`` of a run's checkpoints, oldest first."""
    out = []
    for f in (run / "checkpoints").glob("model_*.zip"):
        m = re.fullmatch(r"model_(\d+)\.zip", f.name)
        if m:
            state = run / "checkpoints" / f"reward_state_{m.group(1)}.pkl"
            out.append((int(m.group(1)), f, state if state.is_file() else None))
    return sorted(out)


def _rollout(model, venv, n: int) -> tuple[list[np.ndarray], dict[str, float], np.ndarray]:
    """Levels, mean per-step reward terms and episode returns of ``n`` policy episodes."""
    levels, returns, sums, counts = [], [], {}, {}
    acc = np.zeros(venv.num_envs)
    obs = venv.reset()
    while len(levels) < n:
        action, _ = model.predict(obs, deterministic=True)
        obs, rew, done, infos = venv.step(action)
        acc += rew
        for info in infos:
            for k, v in info["rewards"].items():
                if v == v:
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
        for i in np.flatnonzero(done):
            levels.append(infos[i]["level"])
            returns.append(acc[i])
            acc[i] = 0.0
    return levels[:n], {k: sums[k] / counts[k] for k in sums}, np.array(returns[:n])


def audit_run(run: str | Path, n_levels: int = 8, astar_runs: int = 1, generator: Any = None,
              min_rise: float = 0.02, stall_ratio: float = 0.25, write: bool = True) -> dict:
    """Audit a trained level run along its checkpoints; writes ``RUN/audit.json`` and returns it."""
    from rlcreate.evaluation.baselines import level_env
    from rlcreate.evaluation.judges import run_judges
    from rlcreate.recipe import load_recipe

    run = Path(run)
    recipe = load_recipe(run / "config.yaml")
    ckpts = checkpoints_of(run)
    pairs = {term: COUNTERPARTS[spec["reward"]] for term, spec in recipe.rewards.items()
             if spec["reward"] in COUNTERPARTS}
    result: dict[str, Any] = {"run": str(run), "n_levels": n_levels, "checkpoints": [c[0] for c in ckpts],
                              "pairs": {}, "notes": []}
    if not ckpts:
        result["notes"].append("no checkpoints/model_<steps>.zip in the run: nothing to audit along training")
    if not pairs:
        result["notes"].append(f"no reward term has a judge counterpart (known: {sorted(COUNTERPARTS)})")
    series: dict[str, dict[str, list]] = {t: {"proxy": [], "judge": []} for t in pairs}
    judges_needed = sorted({j for j, _, _ in pairs.values()})
    skipped: dict[str, str] = {}
    if recipe.trainer["algo"] == "maskable_ppo":
        from sb3_contrib import MaskablePPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    for steps, model_file, state_file in ckpts:
        venv, reward_set = level_env(recipe, min(n_levels, 16), recipe.seed + 1, generator=generator)
        if state_file is not None:
            with open(state_file, "rb") as f:
                reward_set.load_state_dict(pickle.load(f))
        venv.set_progress(steps / max(recipe.trainer["total_timesteps"], 1))
        model = Algo.load(model_file, device="cpu")
        levels, terms, _ = _rollout(model, venv, n_levels)
        judged = run_judges(levels, judges_needed, astar_runs=astar_runs)
        for term, (judge, measure, _) in pairs.items():
            if "skipped" in judged[judge]:
                skipped[term] = judged[judge]["skipped"]
                continue
            series[term]["proxy"].append(float(terms.get(term, float("nan"))))
            series[term]["judge"].append(float(judged[judge][measure]))
    for term, (judge, measure, what) in pairs.items():
        if term in skipped:
            result["pairs"][term] = {"verdict": "skipped", "reason": skipped[term], "judge": f"{judge}.{measure}",
                                     "checks": what}
            continue
        verdict = flag_divergence([c[0] for c in ckpts], series[term]["proxy"], series[term]["judge"],
                                  min_rise, stall_ratio)
        result["pairs"][term] = {**verdict, "judge_name": f"{judge}.{measure}", "checks": what}
    if write:
        (run / "audit.json").write_text(json.dumps(result, indent=2))
    return result

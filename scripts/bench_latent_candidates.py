"""Benchmark: PPO picking among K observed candidates per segment (MarioLatent-v1 ``candidates``)
against its untrained start and best-of-K whole levels from that start, at equal decodes.

Reads top to bottom: config, helpers, per run (sets, judges, differences), speed, write JSON.
The first 64 levels x 128 columns of every set are judged against the TEST blocks by
:func:`rlcreate.levels.quality.set_judges` (human-likeness AUC, element profile inside the human
band, distinct 16-column segments per 16 levels, malformed pipes), and all its levels (default 256)
by the recipe's objective (its reward set on whole levels) with bootstrap 95% CIs.

Rows per run (a MarioLatent-v1 run folder trained with ``candidates: K``):
- ``steered``: the trained policy (mean action); ``untrained``: the same recipe's policy before
  training (its entries ~0.01 < 0.5: always candidate 0, the generator + guide); ``best_of_K``: per
  slot the best of K untrained levels by the objective (K decodes per segment, as the env's);
- ``greedy`` (env with ``candidate_terms``): a hand-built picker on the same observation, no
  learning: the candidate that keeps the level crossable, then the largest observed sum of term
  changes (what RL must beat to claim more than the features);
- ``own_samples``: the generator's own samples (no guide, no picking): the diversity comparator;
- ``objective_differences``: steered - untrained (paired: same requests and prior draws slot by
  slot), steered - best_of_K, greedy - best_of_K, steered - greedy (paired), bootstrap 95% CIs.
- ``control`` per set: per control target (enemies, gaps per 16 columns), the correlation and mean
  absolute error between the requested and the written value over all its levels
  (:func:`rlcreate.levels.demo.control_error`);
- speed: steps/s of MarioLatent-v1 as ``mario_latent.yaml``, ``mario_latent_candidates.yaml``,
  ``mario_latent_candidates_terms.yaml``, ``mario_latent_choice.yaml`` and each run's recipe configure it, vs the bare
  generator's batched chained sampling, in one run (``speed_rounds`` interleaved rounds; with
  ``reference``, also the generator's reference decode, every candidate decoded on its own, in the
  same rounds). With no ``--run``: the speed rows only. Per row also where the time goes
  (``split``: ms per step inside the generator's decode, inside its LM's forward passes, inside the
  env's observation, and the rest) and two ceilings: the ratio if the env did nothing but its
  decodes (``ratio_*_decode_only``) or nothing but their LM forward passes (``ratio_*_lm_only``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_candidates.py --run runs/terms_s0,runs/terms_s1 \\
        --out benchmarks/latent_candidates_terms.json
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the latent bench's set helpers
from bench_latent_generator import best_of_n, boot_diversity, boot_profile, policy_levels  # noqa: E402


@dataclass
class Config:
    run: str = ""
    """Comma-separated MarioLatent-v1 run folders trained with ``candidates: K``."""
    n: int = 256
    """Levels per set for the objective and its CIs (a per-level total spreads ~1: 64 levels leave a
    95% CI of about +-0.4 on an unpaired difference)."""
    n_judge: int = 64
    """The first this many levels of each set go to the judges (the standard set: 64 x 128 columns)."""
    boot: int = 2000
    """Bootstrap resamples for the 95% CIs."""
    speed_seconds: float = 5.0
    """Wall time per speed loop (0: skip the speed rows)."""
    speed_envs: int = 64
    """Levels stepped in lockstep in the speed loops (and the bare generator's batch)."""
    speed_rounds: int = 1
    """Rounds of the speed loops, interleaved (bare, every env, [their reference decodes], bare ...):
    load that moves during the run hits every row alike."""
    speed_recipes: str = ""
    """Comma-separated recipe files whose envs join the speed rows (named by file stem), e.g. a
    variant with another ``candidates`` count; empty: the shipped recipes and the runs' only."""
    reference: bool = True
    """Also time the generator's reference decode (``shared_decode = False``: every candidate on its
    own, the decode before prefix sharing) for the bare generator and each candidate env."""
    pool: str = ""
    """Comma-separated run folder names whose levels are also analysed together (the training seeds
    of one recipe): the ``pooled`` differences; empty: none."""
    seed: int = 0
    """Seed of the judges' subsampling and the bootstrap."""
    out: str = "benchmarks/latent_candidates_terms.json"
    """Output JSON."""


def mean_ci(x: np.ndarray, boot: int, seed: int) -> dict:
    from rlcreate.levels.share import mean_ci as share_mean_ci

    m = share_mean_ci(x, seed, boot)
    return {"mean": m["mean"], "ci95": m["ci"]}


def diff(a: np.ndarray, b: np.ndarray, boot: int, seed: int, paired: bool) -> dict:
    """Mean of ``a - b`` with a bootstrap 95% CI (per slot when ``paired``)."""
    from rlcreate.levels.share import paired_diff, unpaired_diff

    d = (paired_diff if paired else unpaired_diff)(a, b, seed, boot)
    return {"mean": float(a.mean() - b.mean()), "ci95": d["ci"], "paired": paired}


def objective_totals(recipe, levels: list, targets: list) -> tuple[np.ndarray, dict]:
    """The recipe's reward set on whole levels, in batches of 16 as the env scores them."""
    from rlcreate.recipe import build_reward_set

    rs, totals, terms = build_reward_set(recipe), [], {}
    for a in range(0, len(levels), 16):
        t = {k: np.array([x[k] for x in targets[a:a + 16]]) for k in targets[0]}
        res = rs(list(levels[a:a + 16]), progress=1.0, targets=t)
        totals.extend(res.total.tolist())
        for k, v in res.terms.items():
            terms.setdefault(k, []).extend(np.asarray(v, np.float64).tolist())
    means = {k: float(np.nanmean(v)) for k, v in terms.items() if np.isfinite(v).any()}
    return np.array(totals), means


def switch_share(model, asm, n: int, seed: int) -> float:
    """Share of steps that write a candidate other than the prior draw z0 (mean actions)."""
    from rlcreate.train.runner import rollout

    venv = asm.make_env(16, seed, "eval")
    seen: list[np.ndarray] = []

    def act(obs):
        a = model.predict(obs, deterministic=True)[0]
        seen.append(np.asarray(a))
        return a

    rollout(act, venv, n)
    return float((np.concatenate(seen).max(axis=1) >= 0.5).mean())


class Split:
    """Wall time spent inside some methods while a loop runs (instance attributes wrap them, and
    are removed again afterwards: the class's methods come back). Nested methods count in both."""

    def __init__(self, targets: dict):
        self.targets, self.spent = targets, dict.fromkeys(targets, 0.0)

    def _wrap(self, key: str, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.spent[key] += time.perf_counter() - t0
        return timed

    def __enter__(self):
        for key, (obj, name) in self.targets.items():
            setattr(obj, name, self._wrap(key, getattr(obj, name)))
        return self

    def __exit__(self, *exc):
        for obj, name in self.targets.values():
            delattr(obj, name)


def speed(cfg: Config, recipes: dict) -> dict:
    """Steps/s of each recipe's env (its reward set, random picks for candidate envs) vs the bare
    generator writing the same chained segments, one thread, one run: ``speed_rounds`` interleaved
    rounds, each row's rate the mean over rounds; ``*_reference`` rows time the reference decode
    (every candidate decoded on its own) in the same rounds."""
    import torch

    from rlcreate.assemble import assemble

    torch.set_num_threads(1)
    n, rng = cfg.speed_envs, np.random.default_rng(cfg.seed)
    envs = {name: assemble(r).make_env(n, cfg.seed, "eval") for name, r in recipes.items()}
    gen = next(iter(envs.values())).core.gen

    split: dict = {}  # per loop: seconds inside decode / LM forward passes / observe, and calls

    def timed(fn, key):
        fn()
        targets = {}
        core = envs[key].core if key in envs else None
        g = core.gen if core is not None else gen if key == "bare_generator" else None
        if g is not None and hasattr(g, "lm"):  # the column LM decoding noise
            targets = {"decode": (g, "decode"), "lm_start": (g.lm, "start"), "lm_step": (g.lm, "step")}
            if core is not None:
                targets["observe"] = (core, "observe")
        k, t0 = 0, time.perf_counter()
        with Split(targets) as sp:
            while time.perf_counter() - t0 < cfg.speed_seconds:
                fn()
                k += 1
        wall = time.perf_counter() - t0
        acc = split.setdefault(key, {"wall": 0.0, "calls": 0} | dict.fromkeys(targets, 0.0))
        acc["wall"], acc["calls"] = acc["wall"] + wall, acc["calls"] + k
        for name, v in sp.spent.items():
            acc[name] += v
        return k * n / wall

    w, n_seg = gen.segment_width, next(iter(envs.values())).core.n_segments
    state = {"level": np.zeros((n, gen.height, n_seg * w), np.int8), "t": 0}

    def bare():  # the generator alone, chained by context as the env does, one batched call per segment
        z = rng.uniform(-1, 1, (n, gen.latent_dim)).astype(np.float32)
        t = state["t"] % n_seg
        ctx = None if t == 0 else state["level"][:, :, max(0, t * w - gen.context_columns): t * w]
        kw = {"final": t == n_seg - 1} if getattr(gen, "takes_final", False) else {}
        state["level"][:, :, t * w:(t + 1) * w] = gen.decode(z, ctx, **kw)
        state["t"] += 1

    def reference(fn, gens):  # fn with the generators' reference decode
        def run():
            for g in gens:
                g.shared_decode = False
            try:
                fn()
            finally:
                for g in gens:
                    del g.shared_decode  # back to the class default (shared)
        return run

    loops: dict = {"bare_generator": bare}
    for name, venv in envs.items():
        venv.reset()
        if venv.action_space.shape:  # Box entries, else a Discrete(K) choice (candidate_action: choice)
            acts = rng.uniform(-1, 1, (n, venv.action_space.shape[0])).astype(np.float32)
        else:
            acts = rng.integers(0, venv.core.n_cand, n)
        loops[name] = lambda v=venv, a=acts: v.step(a)
    shares = hasattr(gen, "shared_decode")
    if cfg.reference and shares:
        loops["bare_generator_reference"] = reference(bare, [gen])
        for name, venv in envs.items():
            if venv.core.n_cand:
                loops[f"{name}_reference"] = reference(loops[name], [venv.core.gen])
    for fn in loops.values():  # warm up: one whole level each (first level-end rewards build indexes)
        for _ in range(n_seg):
            fn()
    rates: dict[str, list] = {k: [] for k in loops}
    for _ in range(max(1, cfg.speed_rounds)):
        for key, fn in loops.items():
            rates[key].append(timed(fn, key))
    out: dict = {"rounds": rates, "shared_decode": shares}
    for key, r in rates.items():
        out[f"{key}_steps_per_s" if key in envs or key.removesuffix("_reference") in envs
            else f"{key}_segments_per_s"] = float(np.mean(r))
    for name, venv in envs.items():
        out[f"{name}_decodes_per_step"] = max(1, venv.core.n_cand)
    ref = out["bare_generator_segments_per_s"]
    for key in loops:
        if key in envs:
            out[f"ratio_{key}"] = out[f"{key}_steps_per_s"] / ref
        elif key.endswith("_reference") and key != "bare_generator_reference":
            # the reference decode against the bare generator's reference decode (the pre-sharing ratio)
            out[f"ratio_{key}"] = out[f"{key}_steps_per_s"] / out["bare_generator_reference_segments_per_s"]
    # where the time goes (ms per env step / bare call, over all rounds); the ceilings: the ratio if
    # the env spent nothing outside its decodes, or outside their LM forward passes
    out["split_ms_per_step"] = {}
    for key, acc in split.items():
        if "decode" not in acc or not acc["calls"]:
            continue
        ms = {k: 1000 * v / acc["calls"] for k, v in acc.items() if k != "calls"}
        ms["lm"] = ms.pop("lm_start") + ms.pop("lm_step")
        ms["rest"] = ms["wall"] - ms["decode"] - ms.get("observe", 0.0)
        out["split_ms_per_step"][key] = ms
    bare_ms = out["split_ms_per_step"].get("bare_generator", {}).get("wall")
    for key, ms in out["split_ms_per_step"].items():
        if key in envs and bare_ms:
            out[f"ratio_{key}_decode_only"] = bare_ms / ms["decode"]
            out[f"ratio_{key}_lm_only"] = bare_ms / ms["lm"]
    out.update(n_envs=n, seconds_per_loop=cfg.speed_seconds)
    return out


def main(cfg: Config) -> dict:
    import torch
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.assemble import assemble
    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.levels.demo import control_error
    from rlcreate.levels.quality import human_reference_segments, set_judges
    from rlcreate.recipe import load_recipe
    from rlcreate.sb3 import load_policy, make_algo
    from rlcreate.train.runner import rollout

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    env = environment(asdict(cfg))
    test = human_reference_segments("test")
    result: dict = {"runs": {}, "ci": "bootstrap 95% over levels"}
    recipes = {}
    for run in [Path(r) for r in cfg.run.split(",") if r]:
        recipe = load_recipe(run / "config.yaml")
        asm = assemble(recipe)
        trained = load_policy(run)
        untrained = make_algo(recipe, VecMonitor(asm.make_env()), None)
        core = asm.make_env(1, 0, "eval").core
        k, s = core.n_cand, recipe.seed + 1
        recipes.setdefault(run.name, recipe)
        groups: dict[str, tuple[list, list]] = {
            "steered": policy_levels(trained, asm, cfg.n, s),
            "untrained": policy_levels(untrained, asm, cfg.n, s),
            f"best_of_{k}": best_of_n(untrained, asm, recipe, cfg.n, k, recipe.seed + 2),
        }
        if core.cand_terms.terms:
            venv = asm.make_env(16, s, "eval")
            infos = rollout(venv.core.greedy_action, venv, cfg.n)  # the hand-built picker
            groups["greedy"] = ([i["level"] for i in infos], [i.get("targets", {}) for i in infos])
        own = list(core.gen.sample_levels(cfg.n, core.n_segments, seed=recipe.seed + 3))
        groups["own_samples"] = (own, groups["steered"][1])
        rows, totals = {}, {}
        for name, (levels, targets) in groups.items():
            t0 = time.perf_counter()
            sub = levels[: cfg.n_judge]
            judged = set_judges(sub, test, seed=cfg.seed)
            tot, terms = objective_totals(recipe, levels, targets)
            totals[name] = tot
            rows[name] = {"test": judged, **boot_profile(sub, 200, cfg.seed), **boot_diversity(sub, 50, cfg.seed),
                          "objective": {**mean_ci(tot, cfg.boot, cfg.seed), "terms": terms,
                                        "totals": [round(float(x), 4) for x in tot]},
                          "control": control_error(levels, targets)}  # requested vs written, all levels
            corr = "/".join(f"{v['corr']:+.2f}" for v in rows[name]["control"].values())
            print(f"{run.name}:{name:<12} objective {tot.mean():.3f}  AUC {judged['auc']:.3f}  profile "
                  f"{judged['profile_inside']}/5  distinct {judged['distinct_share']:.2f}  control corr {corr}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        best = f"best_of_{k}"
        diffs = {"steered_minus_untrained": diff(totals["steered"], totals["untrained"], cfg.boot, cfg.seed, True),
                 f"steered_minus_{best}": diff(totals["steered"], totals[best], cfg.boot, cfg.seed, False)}
        if "greedy" in totals:
            diffs[f"greedy_minus_{best}"] = diff(totals["greedy"], totals[best], cfg.boot, cfg.seed, False)
            diffs["steered_minus_greedy"] = diff(totals["steered"], totals["greedy"], cfg.boot, cfg.seed, True)
        print(run.name, {key: (round(v["mean"], 3), [round(x, 3) for x in v["ci95"]]) for key, v in diffs.items()})
        rows["steered"]["switch_share"] = switch_share(trained, asm, cfg.n_judge, s)
        result["runs"][run.name] = {"run": str(run), "seed": recipe.seed, "env_kwargs": dict(recipe.env_kwargs),
                                    "env_steps": int(trained.num_timesteps), "candidates": k,
                                    "objective_differences": diffs, "groups": rows}
        np.save(run / "bench_levels.npy", np.stack(groups["steered"][0]))
        write_json(cfg.out, {**finish(env), **result})
    pool = [r for r in cfg.pool.split(",") if r]
    if pool:  # these runs' levels together (the training seeds of one recipe)
        runs = [result["runs"][r] for r in pool]
        cat = {g: np.concatenate([np.array(r["groups"][g]["objective"]["totals"]) for r in runs])
               for g in runs[0]["groups"] if all(g in r["groups"] for r in runs)}
        best = f"best_of_{runs[0]['candidates']}"
        result["pooled"] = {"runs": pool,
                            "steered_minus_untrained": diff(cat["steered"], cat["untrained"], cfg.boot, cfg.seed, True),
                            f"steered_minus_{best}": diff(cat["steered"], cat[best], cfg.boot, cfg.seed, False)}
        print("pooled", {k: (round(v["mean"], 3), [round(x, 3) for x in v["ci95"]])
                         for k, v in result["pooled"].items() if isinstance(v, dict)})
    if cfg.speed_seconds > 0:
        from importlib import resources

        shipped = Path(str(resources.files("rlcreate") / "recipes"))
        base = {name: load_recipe(shipped / f"{name}.yaml")
                for name in ("mario_latent", "mario_latent_candidates", "mario_latent_candidates_terms",
                             "mario_latent_choice")}
        extra = {Path(p).stem: load_recipe(p) for p in cfg.speed_recipes.split(",") if p}
        result["speed"] = speed(cfg, {**base, **recipes, **extra})
        print({key: round(v, 3) for key, v in result["speed"].items() if isinstance(v, float)})
    out = {**finish(env), **result}
    write_json(cfg.out, out)
    print(f"wrote {cfg.out}")
    return out


if __name__ == "__main__":
    main(parse_config(Config))

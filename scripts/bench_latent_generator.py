"""Benchmark: the latent level generator and PPO steering on it, judged on the TEST split.

Reads top to bottom: config, seeding, reference sets, generator candidates, steered run, speed,
write JSON. All sets are 64 levels x 128 columns (8 segments of 16), judged in one run by
:func:`rlcreate.levels.quality.set_judges`: human-likeness AUC (classifier two-sample test against
the TEST blocks; DEV for the candidates too, the split used to choose among them), element profile
inside the human band (of 5), share of distinct 16-column segments per 16 levels, share of
levels with a malformed pipe.

Rows:
- ``human_dev``: held-out human windows (DEV: the judge's human side is TEST);
- ``column_lm``: the column LM's own samples; ``vae_stitched``: the old VAE, random latents;
- ``gan:<name>``: each generator candidate's own samples (chained by context): the shipped GAN, its
  stitched control (every segment a level start), ``column_lm`` (the column LM decoding uniform
  noise) and any GAN folders given;
- with ``--run`` (a MarioLatent-v1 run folder): ``steered`` (the trained policy), ``untrained``
  (the same recipe's policy before training), ``best_of_4`` (best of 4 untrained levels per slot by
  the recipe's objective: sampling more from the start at 4x the cost), ``own_samples`` (the
  generator with random latents and no control channel), with bootstrap CIs on the objective, the
  profile and diversity, and control error per target; ``objective_differences``: steered minus
  untrained (paired: same targets and prior draws slot by slot), minus best-of-n, and untrained
  minus own samples (what a recipe's hand-built guide adds), bootstrap 90% CIs; with ``--sampled``
  (default) also ``steered_sampled`` / ``untrained_sampled`` (both acting by samples of their
  Gaussian, not its mean: whether diversity comes from sampling or from PPO) and their paired
  difference; ``actions``: the share of saturated entries of the policy's sampled actions (and, for
  a ``preview`` env, of redrawn steps); ``control_calibration``: the rates the generator's control
  channel writes per control value (the table its guide inverts);
- speed: MarioLatent-v1 steps/s vs the bare generator's batched chained sampling, in one run: with
  default kwargs, with the shipped recipe's env kwargs, and with ``preview`` (every preview kept;
  half the rows redrawing).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_generator.py --run runs/latent \\
        --candidates column_lm --out benchmarks/latent_generator.json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config

#: The column LM decoding uniform noise (:class:`rlcreate.levels.gan.ColumnLMLatent`) under every
#: setting tried; ``column_lm`` is the shipped default (context 32, seams left open for the next
#: segment, coin and pipe offsets 0.1), ``column_lm_v0`` the one shipped before.
COLUMN_LM_VARIANTS: dict[str, dict] = {
    "column_lm": {},
    "column_lm_v0": {"context_columns": 32, "close_every_segment": True, "element_bias": {}},
    "column_lm_ctx32_open": {"context_columns": 32, "element_bias": {}},
    "column_lm_ctx64_open": {"context_columns": 64, "element_bias": {}},
    "column_lm_ctx128_open": {"context_columns": 128, "element_bias": {}},
    "column_lm_ctx64_coins05": {"context_columns": 64, "element_bias": {"coins": 0.5}},
    "column_lm_ctx64_coins01_pipes005": {"context_columns": 64, "element_bias": {"coins": 0.1, "pipes": 0.05}},
    "column_lm_ctx64_coins015_pipes01": {"context_columns": 64, "element_bias": {"coins": 0.15, "pipes": 0.1}},
    "column_lm_ctx64_coins01_pipes01": {"context_columns": 64},
    "column_lm_no_structure": {"context_columns": 32, "structure": False, "element_bias": {}},
    "column_lm_elements_order": {"order": "elements"},  # same distribution, columns lined up by enemies / gaps
}


@dataclass
class Config:
    run: str = ""
    """Comma-separated MarioLatent-v1 run folders (config.yaml + model/ or checkpoints/); empty: no
    steering rows."""
    generators: int = 1
    """1: judge the reference sets and generator candidates; 0: keep those rows (and earlier runs'
    steering rows) from ``out``, written by an earlier run of this script, and add this run's."""
    candidates: str = ",".join(COLUMN_LM_VARIANTS)
    """Comma-separated generator candidates judged besides the shipped GAN (rlcreate/models/mario-gan):
    level-GAN folders, or names of :data:`COLUMN_LM_VARIANTS` (``column_lm``: the shipped default)."""
    calibration_n: int = 320
    """Levels per column-LM variant for the calibration rows (element means against the TRAINING
    split's, the only split the shipped offsets were chosen on); 0: skip."""
    n: int = 64
    """Levels per set."""
    n_segments: int = 8
    """Segments (of 16 columns) per level."""
    best_of: int = 4
    """Untrained levels per slot for the best-of-n row."""
    steered_best_of: int = 0
    """If > 0, also the trained policy's best of this many levels per slot (``steered_best_of_k``),
    picked the same way: the comparison with the start's best-of-n at equal inference cost."""
    boot: int = 200
    """Bootstrap resamples for the CIs."""
    speed_seconds: float = 5.0
    """Wall time per speed loop."""
    speed_envs: int = 64
    """Levels stepped in lockstep in the speed loops."""
    sampled: bool = True
    """Also judge the trained policy acting by samples of its Gaussian (its std, as in training)
    instead of its mean: the ``steered_sampled`` row, and its untrained start sampled the same way
    (``untrained_sampled``: what sampling alone does)."""
    control_calibration_n: int = 48
    """Levels per control value when measuring the control channel's rates (0: skip)."""
    seed: int = 0
    """Seed of every sample and of the judges' subsampling."""
    out: str = "benchmarks/latent_generator.json"
    """Output JSON."""


def ci(values: np.ndarray, q=(5, 95)) -> list[float]:
    return [float(v) for v in np.percentile(values, q)]


def boot_profile(levels: list[np.ndarray], boot: int, seed: int) -> dict:
    """Bootstrap (over levels) of the number of elements inside the human band."""
    from rlcreate.levels.quality import ELEMENTS, element_profile, human_band

    band = human_band(width=levels[0].shape[1], n_levels=len(levels))
    prof = np.stack([element_profile(levels)[e] for e in ELEMENTS], 1)
    rng = np.random.default_rng(seed)
    lo = np.array([band[e]["low"] for e in ELEMENTS])
    hi = np.array([band[e]["high"] for e in ELEMENTS])
    inside = [int(((m >= lo) & (m <= hi)).sum()) for m in
              (prof[rng.integers(0, len(levels), len(levels))].mean(0) for _ in range(boot))]
    return {"inside_ci90": ci(np.array(inside))}


def boot_diversity(levels: list[np.ndarray], draws: int, seed: int) -> dict:
    """Spread of the distinct-segment share over random sets of 16 levels (without replacement)."""
    from rlcreate.levels.quality import set_diversity

    rng, k = np.random.default_rng(seed), min(16, len(levels))
    vals = [set_diversity([levels[i] for i in rng.choice(len(levels), k, replace=False)], n_segments=None)
            ["distinct_share"] for _ in range(draws)]
    return {"distinct_share_mean16": float(np.mean(vals)), "distinct_share_ci90": ci(np.array(vals))}


def objective(recipe, levels: list[np.ndarray], targets: list[dict], boot: int, seed: int) -> dict:
    """The recipe's reward set on whole levels (fresh state, batches of 16 as the env scores them,
    no actions in the context, so without the prior term), mean with a bootstrap CI."""
    from rlcreate.recipe import build_reward_set

    rs, totals, terms = build_reward_set(recipe), [], {}
    for a in range(0, len(levels), 16):
        t = {k: np.array([x[k] for x in targets[a:a + 16]]) for k in targets[0]}
        res = rs(list(levels[a:a + 16]), progress=1.0, targets=t)
        totals.extend(res.total.tolist())
        for k, v in res.terms.items():
            terms.setdefault(k, []).extend(np.asarray(v, np.float64).tolist())
    totals = np.array(totals)
    rng = np.random.default_rng(seed)
    means = [totals[rng.integers(0, len(totals), len(totals))].mean() for _ in range(boot)]
    return {"mean": float(totals.mean()), "ci90": ci(np.array(means)),
            "terms": {k: float(np.nanmean(v)) if np.isfinite(v).any() else None for k, v in terms.items()},
            "_totals": totals}


def share(a: np.ndarray, b: np.ndarray, boot: int, seed: int, paired: bool) -> dict:
    """Mean of ``a - b`` with a bootstrap 90% CI: per slot when ``paired`` (same targets and prior
    draws slot by slot), else the difference of two independent resamples."""
    rng = np.random.default_rng(seed)
    if paired:
        d = a - b
        means = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(boot)]
    else:
        means = [a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
                 for _ in range(boot)]
    return {"mean": float(a.mean() - b.mean()), "ci90": ci(np.array(means)), "paired": paired}


def policy_levels(model, asm, n: int, seed: int, deterministic: bool = True) -> tuple[list, list]:
    """``n`` levels and their targets from ``model`` on the recipe's env."""
    from rlcreate.train.runner import rollout

    venv = asm.make_env(16, seed, "eval")
    model.set_random_seed(seed)
    infos = rollout(model, venv, n, deterministic=deterministic)
    return [i["level"] for i in infos], [i.get("targets", {}) for i in infos]


def best_of_n(model, asm, recipe, n: int, k: int, seed: int) -> tuple[list, list]:
    """Per slot, the best of ``k`` levels of ``model`` (mean actions, fresh prior draws and requests)
    by the recipe's objective: ``n * k`` levels decoded, ``n`` kept."""
    from rlcreate.recipe import build_reward_set

    many, many_t = policy_levels(model, asm, n * k, seed)
    rs = build_reward_set(recipe)
    tot = []
    for a in range(0, len(many), 16):
        t = {key: np.array([x[key] for x in many_t[a:a + 16]]) for key in many_t[0]}
        tot.extend(rs(list(many[a:a + 16]), progress=1.0, targets=t).total.tolist())
    pick = np.array(tot).reshape(n, k).argmax(1)
    return [many[i * k + j] for i, j in enumerate(pick)], [many_t[i * k + j] for i, j in enumerate(pick)]


def action_stats(model, asm, n: int, seed: int, deterministic: bool = False) -> dict:
    """Share of saturated action entries (|a| > 0.99, i.e. clipped into the box) and mean |a| of
    the policy's actions over ``n`` levels (default *sampled*, as in training); with the env's
    ``preview`` also the share of steps that redraw the previewed segment (gate entry < 0), with
    ``candidates`` the share that took a candidate other than the prior draw's."""
    from rlcreate.train.runner import rollout

    venv = asm.make_env(16, seed, "eval")
    model.set_random_seed(seed)
    seen: list[np.ndarray] = []

    def act(obs):
        a = model.predict(obs, deterministic=deterministic)[0]
        seen.append(np.asarray(a))
        return a

    rollout(act, venv, n)
    a = np.concatenate(seen)
    out = {"saturated_share": float((np.abs(a) > 0.99).mean()), "mean_abs_action": float(np.abs(a).mean()),
           "sampled_steps": int(len(a)), "deterministic": deterministic}
    if getattr(venv.core, "preview", False):
        out["redraw_share"] = float((a[:, -1] < 0).mean())
    if getattr(venv.core, "n_cand", 0):  # candidates: the share of steps that took another candidate
        out["redraw_share"] = float((a.max(axis=1) >= 0.5).mean())
    return out


def control_calibration(gen, n: int, n_segments: int, seed: int) -> dict:
    """Rates per 16 columns each control value writes when held for every segment (``n`` levels per
    value, no guide): the table ``ColumnLMLatent.CONTROL_RATES`` ships, measured again."""
    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.levels.rewards import TARGET_MEASURES

    zero = {"none": {"reward": "residual_prior", "weight": 0.0}}
    out = {"grid": list(gen.CONTROL_GRID), "n_levels": n, "shipped": {k: list(v) for k, v in gen.CONTROL_RATES.items()}}
    for j, name in enumerate(gen.control_names):
        rates = []
        for c in gen.CONTROL_GRID:
            venv = make_mario_latent_v1_vec(n, n_segments, generator=gen, reward=zero, seed=seed, control_channel=True)
            venv.reset()
            a = np.zeros((n, gen.latent_dim + len(gen.control_names)), np.float32)
            a[:, gen.latent_dim + j] = c
            for _ in range(n_segments):
                _, _, _, infos = venv.step(a)
            levels = np.stack([i["level"] for i in infos])
            rates.append(round(float(TARGET_MEASURES[name][0](levels).mean() * 16 / levels.shape[2]), 3))
        out[name] = rates
        print(f"control calibration {name}: {rates}", flush=True)
    return out


def speed(gan, asm_reward, cfg: Config, recipe_kwargs: dict | None = None) -> dict:
    """MarioLatent-v1 steps/s (recipe reward set; and with no reward terms) vs the bare GAN
    decoding the same chained segments, in one run, one thread. With ``recipe_kwargs`` (the shipped
    recipe's env kwargs) also the env as the recipe configures it (control channel, guide,
    deficits, shaping) and the same with ``preview`` (gate open: every preview kept; half the
    rows redrawing)."""
    import torch

    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.levels.value_rewards import ResidualPrior
    from rlcreate.rewards.compose import RewardSet, Term

    torch.set_num_threads(1)
    n, rng = cfg.speed_envs, np.random.default_rng(cfg.seed)
    actions = rng.uniform(-0.5, 0.5, (n, gan.latent_dim)).astype(np.float32)
    loops = {}  # env -> the fixed actions it is stepped with

    def timed(fn):
        fn()
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < cfg.speed_seconds:
            fn()
            k += 1
        return k * n / (time.perf_counter() - t0)

    envs = {"env_recipe_rewards": make_mario_latent_v1_vec(n, cfg.n_segments, generator=gan, reward=asm_reward,
                                                           seed=cfg.seed),
            # the cheapest term (the prior term: one sum per level): decode, seam, features and bookkeeping
            "env_prior_term_only": make_mario_latent_v1_vec(n, cfg.n_segments, generator=gan, reward=RewardSet(
                [Term("prior", ResidualPrior(), 1.0)]), seed=cfg.seed)}
    loops.update({k: actions for k in envs})
    if recipe_kwargs is not None and hasattr(gan, "control_names"):
        kw = {k: v for k, v in recipe_kwargs.items() if k not in ("generator", "preview", "n_segments")}
        controls = rng.uniform(-0.2, 0.2, (n, len(gan.control_names))).astype(np.float32)
        gate = np.where(np.arange(n) % 2 == 0, 0.5, -0.5).astype(np.float32)[:, None]  # half redraw
        variants = {"env_recipe_kwargs": (False, np.concatenate([actions, controls], 1)),
                    "env_recipe_kwargs_preview_keep": (True, np.concatenate([actions, controls, gate * 0 + 0.5], 1)),
                    "env_recipe_kwargs_preview_redraw_half": (True, np.concatenate([actions, controls, gate], 1))}
        for name, (preview, acts) in variants.items():
            envs[name] = make_mario_latent_v1_vec(n, cfg.n_segments, generator=gan, reward=asm_reward, seed=cfg.seed,
                                                  preview=preview, **kw)
            loops[name] = acts
    w = gan.segment_width
    state = {"level": np.zeros((n, 14, cfg.n_segments * w), np.int8), "t": 0}

    def bare():  # the generator alone writing levels segment by segment, chained by context as the env does
        z = rng.uniform(-1, 1, (n, gan.latent_dim)).astype(np.float32)
        t = state["t"] % cfg.n_segments
        ctx = None if t == 0 else state["level"][:, :, max(0, t * w - gan.context_columns): t * w]
        kw = {"final": t == cfg.n_segments - 1} if getattr(gan, "takes_final", False) else {}
        state["level"][:, :, t * w:(t + 1) * w] = gan.decode(z, ctx, **kw)
        state["t"] += 1

    out = {"bare_generator_segments_per_s": timed(bare)}
    for name, venv in envs.items():
        venv.reset()
        out[f"{name}_steps_per_s"] = timed(lambda v=venv, a=loops[name]: v.step(a))
    out["bare_generator_again_segments_per_s"] = timed(bare)  # load drifts: bracket the env loops
    ref = (out["bare_generator_segments_per_s"] + out["bare_generator_again_segments_per_s"]) / 2
    for name in envs:
        out[f"ratio_{name}"] = out[f"{name}_steps_per_s"] / ref
    out.update(n_envs=n, seconds_per_loop=cfg.speed_seconds)
    return out


def generator_rows(cfg: Config, result: dict, judge, human: list, width: int) -> None:
    """Reference sets (human DEV, column LM, old VAE) and every generator candidate's own samples."""
    from rlcreate.levels.gan import ColumnLMLatent, LevelGAN, default_gan_path
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.generators.latent import LatentLevelGenerator

    result["sets"]["human_dev"] = judge("human_dev", human)
    lm_model = ColumnLM.load()
    lm = list(lm_model.generate(width, batch=cfg.n, seed=cfg.seed))
    result["sets"]["column_lm"] = judge("column_lm", lm)
    vae = LatentLevelGenerator.load()
    z = np.random.default_rng(cfg.seed).standard_normal((cfg.n * cfg.n_segments, vae.latent_dim)).astype(np.float32)
    segs = vae.decode(z).reshape(cfg.n, cfg.n_segments, 14, 16).transpose(0, 2, 1, 3).reshape(cfg.n, 14, width)
    result["sets"]["vae_stitched"] = judge("vae_stitched", list(segs))

    # ---- generator candidates (own samples, chained; and stitched for the shipped one) ----
    folders = [str(default_gan_path())] + [c for c in cfg.candidates.split(",") if c]
    for folder in folders:
        if folder in COLUMN_LM_VARIANTS:
            gan = ColumnLMLatent(lm=lm_model, **COLUMN_LM_VARIANTS[folder])
        else:
            gan = LevelGAN.load(folder)
        name = {str(default_gan_path()): "shipped"}.get(folder, Path(folder).name)
        levels = list(gan.sample_levels(cfg.n, cfg.n_segments, seed=cfg.seed + 1))
        result["candidates"][name] = {"folder": folder, "config": getattr(gan.config, "__dict__", gan.config),
                                      **judge(f"gan:{name}", levels, also_dev=True)}
        if name == "shipped":
            stitched = list(gan.sample_levels(cfg.n, cfg.n_segments, seed=cfg.seed + 1, chained=False))
            result["candidates"]["shipped_stitched"] = judge("gan:shipped, stitched", stitched)
    if cfg.calibration_n:
        result["calibration"] = calibration(cfg, lm_model, width)


def calibration(cfg: Config, lm_model, width: int) -> dict:
    """Element means per 128 columns of each column-LM variant (``calibration_n`` levels, seeds
    apart from the judged sets') next to the TRAINING split's: the split the offsets were chosen on."""
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.quality import ELEMENTS, element_profile

    train = element_profile(training_windows(width, stride=1))
    out = {"training_split": {e: round(float(train[e].mean()), 3) for e in ELEMENTS}, "n_levels": cfg.calibration_n,
           "seed": cfg.seed + 100, "variants": {}}
    for name in [c for c in cfg.candidates.split(",") if c in COLUMN_LM_VARIANTS]:
        gen = ColumnLMLatent(lm=lm_model, **COLUMN_LM_VARIANTS[name])
        prof = element_profile(list(gen.sample_levels(cfg.calibration_n, cfg.n_segments, seed=cfg.seed + 100)))
        out["variants"][name] = {e: round(float(prof[e].mean()), 3) for e in ELEMENTS}
        print(f"calibration {name:<34}", "  ".join(f"{e} {v:.2f}" for e, v in out["variants"][name].items()), flush=True)
    return out

def main(cfg: Config) -> dict:
    import torch

    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.levels.corpus import dev_windows
    from rlcreate.levels.quality import human_reference_segments, set_judges

    # ---- seeding, in one place ----
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    env = environment(asdict(cfg))
    test, dev = human_reference_segments("test"), human_reference_segments("dev")
    width = 16 * cfg.n_segments
    result: dict = {"sets": {}, "candidates": {}}

    def judge(name: str, levels, also_dev: bool = False) -> dict:
        t0 = time.perf_counter()
        row = {"test": set_judges(levels, test, seed=cfg.seed)}
        if also_dev:
            row["dev"] = set_judges(levels, dev, seed=cfg.seed)
        print(f"{name:<28} AUC {row['test']['auc']:.3f}  profile {row['test']['profile_inside']}/5  "
              f"distinct {row['test']['distinct_share']:.2f}  malformed {row['test']['malformed_pipe_share']:.0%}"
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        return row

    if not cfg.generators and Path(cfg.out).is_file():  # keep the generator rows of an earlier run
        import json

        old = json.loads(Path(cfg.out).read_text())
        result.update(sets=old["sets"], candidates=old["candidates"], generators_from=old.get("started"))
        result.update({k: old[k] for k in ("calibration", "control_calibration") if k in old})
        if old.get("steering"):  # earlier runs' steering rows stay; a run judged again is replaced
            result["steering"] = old["steering"]
    human = list(dev_windows(width, stride=width))
    if cfg.generators or "human_dev" not in result["sets"]:
        generator_rows(cfg, result, judge, human, width)

    write_json(cfg.out, {**finish(env), **result})  # the generator rows, kept if a later step fails

    # ---- steering, per run: trained vs untrained start vs best-of-n vs own samples ----
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.assemble import assemble
    from rlcreate.levels.demo import control_error
    from rlcreate.recipe import load_recipe
    from rlcreate.sb3 import load_policy, make_algo

    runs = [Path(r) for r in cfg.run.split(",") if r]
    asm = None
    for run in runs:
        recipe = load_recipe(run / "config.yaml")
        asm = assemble(recipe)
        trained = load_policy(run)
        untrained = make_algo(recipe, VecMonitor(asm.make_env()), None)
        gen = asm.make_env(1, 0, "eval").core.gen
        groups: dict[str, tuple[list, list]] = {}
        groups["steered"] = policy_levels(trained, asm, cfg.n, recipe.seed + 1)
        if cfg.sampled:  # the same requests and prior draws, actions sampled from the policy's Gaussian
            groups["steered_sampled"] = policy_levels(trained, asm, cfg.n, recipe.seed + 1, deterministic=False)
        groups["untrained"] = policy_levels(untrained, asm, cfg.n, recipe.seed + 1)
        if cfg.sampled:
            groups["untrained_sampled"] = policy_levels(untrained, asm, cfg.n, recipe.seed + 1, deterministic=False)
        groups[f"best_of_{cfg.best_of}"] = best_of_n(untrained, asm, recipe, cfg.n, cfg.best_of, recipe.seed + 2)
        if cfg.steered_best_of:  # the same selection from the trained policy: equal inference cost
            groups[f"steered_best_of_{cfg.steered_best_of}"] = best_of_n(
                trained, asm, recipe, cfg.n, cfg.steered_best_of, recipe.seed + 2)
        own = list(gen.sample_levels(cfg.n, cfg.n_segments, seed=recipe.seed + 3))
        groups["own_samples"] = (own, groups["steered"][1])  # the steered set's targets, for the control rows
        steer = {}
        for name, (levels, targets) in groups.items():
            steer[name] = {**judge(f"{run.name}:{name}", levels), **boot_profile(levels, cfg.boot, cfg.seed),
                           **boot_diversity(levels, 50, cfg.seed),
                           "objective": objective(recipe, levels, targets, cfg.boot, cfg.seed),
                           "control": control_error(levels, targets)}
        totals = {k: v["objective"].pop("_totals") for k, v in steer.items()}
        for k, v in totals.items():  # per level, slot order: pooled or paired analyses later
            steer[k]["objective"]["totals"] = [round(float(x), 4) for x in v]
        best = f"best_of_{cfg.best_of}"
        # steered and untrained levels share targets and prior draws slot by slot (same env seed)
        ppo_share = {"steered_minus_untrained": share(totals["steered"], totals["untrained"], cfg.boot, cfg.seed, True),
                     f"steered_minus_{best}": share(totals["steered"], totals[best], cfg.boot, cfg.seed, False),
                     "untrained_minus_own_samples": share(totals["untrained"], totals["own_samples"], cfg.boot,
                                                          cfg.seed, False)}
        if "steered_sampled" in totals:
            ppo_share["steered_sampled_minus_untrained"] = share(totals["steered_sampled"], totals["untrained"],
                                                                 cfg.boot, cfg.seed, True)
            ppo_share["steered_sampled_minus_untrained_sampled"] = share(
                totals["steered_sampled"], totals["untrained_sampled"], cfg.boot, cfg.seed, True
            )
            ppo_share[f"steered_sampled_minus_{best}"] = share(totals["steered_sampled"], totals[best], cfg.boot,
                                                               cfg.seed, False)
        if cfg.steered_best_of:
            sb = f"steered_best_of_{cfg.steered_best_of}"
            ppo_share[f"{sb}_minus_{best}"] = share(totals[sb], totals[best], cfg.boot, cfg.seed, False)
        print(run.name, {k: (round(v["mean"], 3), [round(x, 3) for x in v["ci90"]]) for k, v in ppo_share.items()})
        steer["human_dev"] = {**result["sets"]["human_dev"], **boot_profile(human, cfg.boot, cfg.seed)}
        steer["steered"]["actions"] = action_stats(trained, asm, cfg.n, recipe.seed + 4)
        steer["untrained"]["actions"] = action_stats(untrained, asm, cfg.n, recipe.seed + 4)
        steer["steered"]["actions_mean"] = action_stats(trained, asm, cfg.n, recipe.seed + 4, deterministic=True)
        result.setdefault("steering", {})[run.name] = {
            "run": str(run), "env_id": recipe.env_id, "seed": recipe.seed, "env_kwargs": dict(recipe.env_kwargs),
            "policy": getattr(trained, "rlcreate_source", "model"), "env_steps": int(trained.num_timesteps),
            "deterministic_policy": "steered, untrained, best_of: the mean action; *_sampled: sampled", "objective_note": "recipe reward set on whole levels, no prior term",
            "objective_differences": ppo_share, "groups": steer}
        for name, file in (("steered", "bench_levels.npy"), ("steered_sampled", "bench_levels_sampled.npy")):
            if name in groups:
                np.save(run / file, np.stack(groups[name][0]))

    # ---- speed: the last run's (else the shipped recipe's) generator and reward set ----
    from importlib import resources

    shipped = load_recipe(Path(str(resources.files("rlcreate") / "recipes" / "mario_latent.yaml")))
    if asm is None:
        asm = assemble(shipped)
    gen = asm.make_env(1, 0, "eval").core.gen
    if cfg.control_calibration_n and hasattr(gen, "CONTROL_RATES"):
        result["control_calibration"] = control_calibration(gen, cfg.control_calibration_n, cfg.n_segments, 7)
    result["speed"] = speed(gen, asm.reward_set, cfg, dict(shipped.env_kwargs))
    print({k: round(v, 3) for k, v in result["speed"].items() if isinstance(v, float)})
    out = {**finish(env), **result}
    write_json(cfg.out, out)
    print(f"wrote {cfg.out}")
    return out


if __name__ == "__main__":
    main(parse_config(Config))

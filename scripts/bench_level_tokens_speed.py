"""Benchmark: MarioTokens-v1 (the demo's settings) against the bare column LM's own sampling, in one run.

At the same batch (rows written in parallel), interleaved ``repeats`` times so machine load hits
every path alike:

- ``lm``: :meth:`ColumnLM.generate` writing ``columns`` columns per row (KV cache, sampling);
- ``env``: one episode of ``rlcreate/MarioTokens-v1`` built from ``mario_tokens.yaml`` (top-k
  offers, masks, playable-only solver checks, control observation, the recipe's reward set at the
  level's end), actions sampled uniformly among the allowed slots;
- ``env_own``: the same episode with the LM's outputs of an earlier episode replayed instead of
  running it: what the env costs beyond the LM's forward passes;
- ``train``: MaskablePPO with the recipe's ``lm_prior`` policy learning one rollout of ``n_steps``
  per row (collection + update), in env steps per second; ``train_update`` is the PPO update's part;
- ``train_LABEL`` (``--train_recipes``): the same with another recipe's PPO learning values
  (``n_epochs``, ``batch_size``, ``policy_kwargs`` such as fused Adam), each with its own env.

Reports columns per second for each and the ratios env / lm and train / lm from the median wall
times, the median of the ratios within each repeat (``*_paired``: the paths of one repeat run back
to back, so load drifting between repeats cancels) (and, as a check on load spikes, from the fastest repeat of each path), the same ratios from
the process's CPU time (``*_cpu``: single-threaded torch, so CPU seconds are the work done; steadier
than wall time when other jobs share the cores), plus cProfiles of one env episode and of one
training call (top functions by own time) to show where the time goes.

    OMP_NUM_THREADS=1 python scripts/bench_level_tokens_speed.py --out benchmarks/level_tokens_speed.json
    # the demo's recipe, and two cheaper PPO updates next to it in the same run:
    OMP_NUM_THREADS=1 python scripts/bench_level_tokens_speed.py --recipe rlcreate/recipes/mario_tokens_variety.yaml \
        --train_recipes e3_fused=benchmarks/recipes/demo_variety_e3_fused.yaml,e2_b512_fused=benchmarks/recipes/demo_variety_e2_b512_fused.yaml \
        --out benchmarks/level_tokens_speed_update.json
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import platform
import pstats
import resource
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    batches: str = "16,64"
    """comma-separated batch sizes (rows in parallel)"""
    columns: int = 128
    """columns per level (the demo's width)"""
    repeats: int = 7
    """interleaved repetitions; the median is reported"""
    train: int = 1
    """1: also time one MaskablePPO rollout + update per batch size"""
    seed: int = 0
    recipe: str = ""
    """the recipe file whose env and PPO values are timed ("" = the shipped mario_tokens.yaml, the benches' base)"""
    train_recipes: str = ""
    """comma-separated LABEL=recipe-file pairs: extra training paths with those recipes' PPO learning
    values (trainer.hyper's n_epochs, batch_size, policy_kwargs) on ``recipe``'s env ("" = none)"""
    out: str = "benchmarks/level_tokens_speed.json"
    profile: int = 1
    """1: also profile one env episode and one training call per batch size"""
    ab: int = 0
    """1: instead, alternate the fast paths with their plain references (the code before the speed
    work: torch.topk, the distribution-object policy paths through nn.Modules, masks fancy-indexed,
    variety offers compared tile by tile, offer features from tiles, the reach seam solved again,
    nan_to_num on every feature window, the LM asked for every layer's hidden states, the
    rollout's policy forward under no_grad only)
    in this one process, ``repeats`` times, and report the paired CPU-time speed-up of an env
    episode and of a training call (the same results either way: tests/test_tokens_speed_equality.py)"""
    lm_paths: int = 0
    """1: also time the env's own LM calls without the env (``lm_steps``: ``start`` and a level's
    ``step`` calls with hidden states, as the env makes them, the most likely column fed back) and
    the same with ``touch_mb`` MiB of memory written between forward passes (``lm_steps_touch``;
    its LM calls alone: ``lm_steps_touch_lm``): whether evicting the caches between forward passes
    is what slows the LM inside the env"""
    touch_mb: int = 4
    """with ``lm_paths``: MiB written between the LM's forward passes in ``lm_steps_touch``"""
    reference: int = 0
    """1: time everything with the plain references swapped in (those of ``ab``, or the ``ab_only``
    subset): the same bench on the code before the speed work, for a before/after pair of runs"""
    ab_only: str = ""
    """with ``ab``: swap only these fast paths (comma-separated: _topk_without_ties, forward,
    evaluate_actions, env_method, observe (the variety offers tile by tile), observe_ids (offer
    features from vocabulary tables), alive_after_exits (the reach seam from the mask's call),
    _features (nan_to_num only where needed), split_head (the LM's hidden state from its
    transformer's output), rollout_inference_mode (the policy's rollout forward in inference
    mode)); "" = all of them"""


def build(batch: int, columns: int, seed: int, recipe_path: str = "", learning_from: str = ""):
    """The recipe at ``batch`` rows of ``columns`` columns (one level per row per rollout), its
    assembly and env; ``learning_from``: take the PPO learning values from that recipe file."""
    from rlcreate.assemble import assemble
    from rlcreate.levels.demo import TOKENS_BASE, recipe_file
    from rlcreate.recipe import load_recipe

    recipe = load_recipe(recipe_path or recipe_file(TOKENS_BASE))
    if learning_from:
        other = load_recipe(learning_from).trainer["hyper"]
        recipe.trainer["hyper"].update({k: other[k] for k in LEARNING_VALUES if k in other})
    recipe.env["kwargs"]["n_columns"] = columns
    recipe.trainer["n_envs"] = batch
    recipe.trainer["hyper"]["n_steps"] = columns
    recipe.trainer["hyper"]["batch_size"] = min(recipe.trainer["hyper"].get("batch_size", 256), columns * batch)
    asm = assemble(recipe)
    return recipe, asm, asm.make_env(batch, seed, "train")


#: what ``--train_recipes`` takes from another recipe (n_steps stays one level per row)
LEARNING_VALUES = ("n_epochs", "batch_size", "learning_rate", "policy_kwargs")


def train_recipes(text: str) -> dict[str, str]:
    """``--train_recipes`` -> {label: recipe file}."""
    out = {}
    for part in [p for p in text.split(",") if p]:
        label, sep, path = part.partition("=")
        if not sep or not label or not Path(path).is_file():
            raise SystemExit(f"error: --train_recipes {part!r}: write LABEL=recipe-file pairs, e.g. e3=benchmarks/recipes/demo_variety_e3_fused.yaml")
        out[label] = path
    return out


def env_episode(venv, rng) -> None:
    venv.reset()
    done = np.zeros(venv.num_envs, bool)
    while not done.all():
        m = venv.action_masks()  # a uniform pick among allowed slots, vectorised (the policy's cost is not the env's)
        a = np.argmax(np.where(m, rng.random(m.shape), -1.0), axis=1)
        _, _, done, _ = venv.step(a)


class Replay:
    """Stands in for ``lm.step`` and returns the outputs recorded from a real episode, in order."""

    def __init__(self, lm):
        self.lm, self.outputs, self.real = lm, [], lm.step

    def record(self, state, ids, with_hidden: bool = False):
        out = self.real(state, ids, with_hidden=with_hidden)
        self.outputs.append(out)
        return out

    def episode(self, venv, rng) -> float:
        """Seconds of one env episode with the recorded LM outputs (the LM restored afterwards)."""
        outputs = iter(self.outputs)
        self.lm.step = lambda state, ids, with_hidden=False: next(outputs)
        try:
            t = time.perf_counter()
            env_episode(venv, rng)
            return time.perf_counter() - t
        finally:
            self.lm.step = self.real


class CpuTally:
    """Wraps a callable and sums the process CPU seconds spent inside it (``take()`` returns the sum
    since the last take): the LM's part of an env episode, the policy's forward in a rollout."""

    def __init__(self, fn):
        self.fn, self.total = fn, 0.0

    def __call__(self, *args, **kwargs):
        c = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.process_time() - c

    def take(self) -> float:
        total, self.total = self.total, 0.0
        return total


def timed(fn, seconds: list[float], cpu: list[float]):
    """``fn`` that appends its wall time to ``seconds`` and its CPU time to ``cpu`` on every call."""

    def call() -> None:
        t, c = time.perf_counter(), time.process_time()
        fn()
        seconds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)

    return call


def top_tottime(prof: cProfile.Profile, n: int) -> list[str]:
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(n)
    return [ln.strip() for ln in s.getvalue().splitlines() if ln.strip()][: n + 4]


def bench_batch(cfg: Config, lm, rng: np.random.Generator, batch: int) -> dict:
    """Times, ratios and profiles of one batch size."""
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.sb3.algo import make_algo

    recipe, asm, venv = build(batch, cfg.columns, cfg.seed, cfg.recipe)
    models = {}  # "train" or "train_LABEL" -> a MaskablePPO model on its own env
    if cfg.train:
        models["train"] = make_algo(recipe, VecMonitor(venv), None)
        for label, path in train_recipes(cfg.train_recipes).items():
            r, _, v = build(batch, cfg.columns, cfg.seed, cfg.recipe, learning_from=path)
            models[f"train_{label}"] = make_algo(r, VecMonitor(v), None)
    updates = {key: key.replace("train", "train_update", 1) for key in models}
    lm_only = ["lm_steps", "lm_steps_touch"] if cfg.lm_paths else []
    keys = ["lm", *lm_only, "env", "env_own", *(k for key in models for k in (key, updates[key]))]
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    for key, m in models.items():  # time the PPO update inside learn() apart from the rollout
        m.train = timed(m.train, times[updates[key]], cpu[updates[key]])  # type: ignore[method-assign]
    env_episode(venv, rng)  # warm-up: numba, caches
    lm.generate(cfg.columns, batch=batch, seed=cfg.seed)
    replay = Replay(venv.core.lm)
    venv.core.lm.step = replay.record
    env_episode(venv, rng)  # records the LM outputs that env_own replays
    venv.core.lm.step = replay.real
    for key, m in models.items():
        m.learn(total_timesteps=cfg.columns * batch, reset_num_timesteps=False)
        times[updates[key]].clear()
        cpu[updates[key]].clear()
    # parts measured inside the timed paths (CPU only; a process_time pair per call): the LM's
    # forward passes inside an env episode, and the policy's forward inside a training call
    core_lm = venv.core.lm
    lm_start, lm_step = CpuTally(core_lm.start), CpuTally(core_lm.step)
    forwards = {key: CpuTally(m.policy.forward) for key, m in models.items()}
    parts: dict[str, list[float]] = {"env_lm": [], **{f"{key}_policy_forward": [] for key in models}}

    def env_with_lm_tally(r: int) -> None:
        core_lm.start, core_lm.step = lm_start, lm_step
        try:
            env_episode(venv, rng)
        finally:
            del core_lm.start, core_lm.step  # the class's methods again
        parts["env_lm"].append(lm_start.take() + lm_step.take())

    def learn(r: int, key: str, m) -> None:
        m.policy.forward = forwards[key]
        try:
            m.learn(total_timesteps=cfg.columns * batch, reset_num_timesteps=False)
        finally:
            del m.policy.forward
        parts[f"{key}_policy_forward"].append(forwards[key].take())

    touch = np.zeros(cfg.touch_mb * 2**20 // 8)
    touch_step = CpuTally(core_lm.step)
    if cfg.lm_paths:
        parts["lm_steps_touch_lm"] = []

    def lm_steps(r: int, touched: bool) -> None:
        """The env's LM calls alone: start, then a step per column but the last."""
        logits, state = core_lm.start(batch, with_hidden=True)
        for _ in range(cfg.columns - 1):
            if touched:
                np.add(touch, 1.0, out=touch)  # evicts the caches as other work between passes would
                logits, state = touch_step(state, np.argmax(logits, axis=1), with_hidden=True)
            else:
                logits, state = core_lm.step(state, np.argmax(logits, axis=1), with_hidden=True)
        if touched:
            parts["lm_steps_touch_lm"].append(touch_step.take())

    paths = {
        "lm": lambda r: lm.generate(cfg.columns, batch=batch, seed=cfg.seed + r),
        **({"lm_steps": lambda r: lm_steps(r, False), "lm_steps_touch": lambda r: lm_steps(r, True)} if cfg.lm_paths else {}),
        "env": env_with_lm_tally,
        "env_own": lambda r: replay.episode(venv, rng),
    }
    for key, m in models.items():
        paths[key] = lambda r, key=key, m=m: learn(r, key, m)
    faults: dict[str, list[int]] = {k: [] for k in paths}  # minor page faults (allocator churn)
    for r in range(cfg.repeats):
        for key, run in paths.items():
            t, c = time.perf_counter(), time.process_time()
            f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            inner = run(r)
            times[key].append(inner if key == "env_own" else time.perf_counter() - t)
            cpu[key].append(time.process_time() - c)  # env_own: the replayed episode's CPU, LM restore included
            faults[key].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
    cols = cfg.columns * batch
    med = {k: float(np.median(v)) for k, v in times.items() if v}
    fastest = {k: float(np.min(v)) for k, v in times.items() if v}
    mc = {k: float(np.median(v)) for k, v in cpu.items() if v}
    row = {f"{k}_columns_per_s": cols / s for k, s in med.items()}
    row["env_over_lm"] = med["lm"] / med["env"]
    row["env_over_lm_fastest_repeat"] = fastest["lm"] / fastest["env"]
    row["env_own_share_of_env"] = med["env_own"] / med["env"]
    row["env_over_lm_cpu"] = mc["lm"] / mc["env"]
    row["env_own_share_of_env_cpu"] = mc["env_own"] / mc["env"]
    for key in models:
        row[f"{key}_over_lm"] = med["lm"] / med[key]
        row[f"{key}_over_lm_fastest_repeat"] = fastest["lm"] / fastest[key]
        row[f"{updates[key]}_share_of_{key}"] = med[updates[key]] / med[key]
        row[f"{key}_over_lm_cpu"] = mc["lm"] / mc[key]
        row[f"{updates[key]}_share_of_{key}_cpu"] = mc[updates[key]] / mc[key]
    # paired: the ratio within each repeat (its paths ran back to back, under about the same load),
    # then the median over repeats; load that drifts between repeats cancels out of these
    for name, per in (("", times), ("_cpu", cpu)):
        lm_r = np.array(per["lm"])
        row[f"env_over_lm_paired{name}"] = float(np.median(lm_r / np.array(per["env"])))
        for key in models:
            row[f"{key}_over_lm_paired{name}"] = float(np.median(lm_r / np.array(per[key])))
    # CPU microseconds per column of each part beyond the LM: the env's own work (LM outputs
    # replayed), PPO's update, and the rest of training (policy forward per step, SB3's rollout
    # bookkeeping, and the LM's own slowdown when interleaved with all that)
    row["cpu_us_per_column"] = {k: 1e6 * v / cols for k, v in mc.items()}
    # ... and of the parts measured inside the paths: the LM inside the env episode (its median;
    # the env's episode minus it is the env's own work as it runs next to the LM, compare env_own,
    # the same work with the LM's outputs replayed) and the policy's forward inside training
    row["cpu_us_per_column_inside"] = {k: 1e6 * float(np.median(v)) / cols for k, v in parts.items() if v}
    row["cpu_seconds_inside"] = {k: [round(x, 4) for x in v] for k, v in parts.items()}
    row["minor_page_faults_per_column"] = {k: float(np.median(v)) / cols for k, v in faults.items()}
    row["seconds"] = {k: [round(x, 3) for x in v] for k, v in times.items()}
    row["cpu_seconds"] = {k: [round(x, 3) for x in v] for k, v in cpu.items()}
    print(f"batch {batch}: lm {row['lm_columns_per_s']:.0f} cols/s, env {row['env_columns_per_s']:.0f} "
          f"({row['env_over_lm']:.2f}x; fastest repeats {row['env_over_lm_fastest_repeat']:.2f}x; CPU time "
          f"{row['env_over_lm_cpu']:.2f}x; paired {row['env_over_lm_paired']:.2f}x; env's own share {row['env_own_share_of_env']:.2f})"
          + "".join(f", {key} {row[f'{key}_columns_per_s']:.0f} ({row[f'{key}_over_lm']:.2f}x; CPU time "
                    f"{row[f'{key}_over_lm_cpu']:.2f}x; paired {row[f'{key}_over_lm_paired']:.2f}x; update share "
                    f"{row[f'{updates[key]}_share_of_{key}']:.2f})" for key in models), flush=True)
    us, inside = row["cpu_us_per_column"], row["cpu_us_per_column_inside"]
    print(f"batch {batch}, CPU us per column: LM alone {us['lm']:.0f}, env {us['env']:.0f} (LM inside it "
          f"{inside['env_lm']:.0f}, the rest {us['env'] - inside['env_lm']:.0f}; env's own work replayed {us['env_own']:.0f})"
          + "".join(f", {key} {us[key]:.0f} (policy forward {inside[f'{key}_policy_forward']:.0f}, update "
                    f"{us[updates[key]]:.0f})" for key in models), flush=True)
    model = models.get("train")
    if not cfg.profile:
        return row
    prof = cProfile.Profile()
    prof.enable()
    env_episode(venv, rng)
    prof.disable()
    row["profile_top_tottime"] = top_tottime(prof, 15)
    if model is not None:
        prof = cProfile.Profile()
        prof.enable()
        model.learn(total_timesteps=cfg.columns * batch, reset_num_timesteps=False)
        prof.disable()
        row["profile_train_top_tottime"] = top_tottime(prof, 15)
    print("\n".join(row["profile_top_tottime"][:22]))
    return row


def _reference_paths():
    """Patches that put back the plain versions of the speed paths (see ``Config.ab``)."""
    import torch

    import rlcreate.envs.token_stream as token_stream
    from rlcreate.envs.column_tokens import ColumnTokensCore
    from rlcreate.envs.core_vec_env import CoreVecEnv
    from rlcreate.levels.envs import SolverSeam
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.objectives import VarietyOffers
    from rlcreate.levels.value_rewards import ProfileOffers, SetProfileOffers
    from rlcreate.sb3.policies import LMPriorPolicy

    def topk(logits, k):
        vals, ids = torch.topk(torch.from_numpy(np.ascontiguousarray(logits)), k + 1, dim=1)
        v = vals.numpy()
        return ids.numpy()[:, :k] if (v[:, 1:] < v[:, :-1]).all() else None

    def latents(policy, obs):
        return policy.mlp_extractor(policy.extract_features(obs))

    def forward(policy, obs, deterministic=False, action_masks=None):
        latent_pi, latent_vf = latents(policy, obs)
        values = policy.value_net(latent_vf)
        distribution, _ = policy._distribution(obs, latent_pi, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions.reshape(-1), values, distribution.log_prob(actions)

    def evaluate(policy, obs, actions, action_masks=None):
        latent_pi, latent_vf = latents(policy, obs)
        distribution, prior = policy._distribution(obs, latent_pi, action_masks)
        entropy = distribution.entropy() + (distribution.distribution.probs * prior).sum(-1)
        return policy.value_net(latent_vf), distribution.log_prob(actions), entropy

    def env_method(self, name, *args, indices=None, **kwargs):
        return list(self.core.action_masks()[self._indices(indices)])

    def features(self, window):  # nan_to_num on every window
        if window.shape[2] > 1:
            return np.nan_to_num(self.featurizer(window), nan=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nan_to_num(self.featurizer(window), nan=0.0)

    return [(token_stream, "_topk_without_ties", topk), (LMPriorPolicy, "forward", forward),
            (LMPriorPolicy, "evaluate_actions", evaluate), (CoreVecEnv, "env_method", env_method),
            (VarietyOffers, "observe", VarietyOffers.observe_tile_by_tile),
            # per-offer features from tiles instead of vocabulary tables; the reach seam solved
            # again for the chosen column instead of taken from the mask's call
            *((cls, "observe_ids", None) for cls in (VarietyOffers, ProfileOffers, SetProfileOffers)),
            (SolverSeam, "alive_after_exits", None), (ColumnTokensCore, "_features", features),
            (ColumnLM, "split_head", False),  # the LM's forward asked for every layer's hidden states
            (LMPriorPolicy, "rollout_inference_mode", False)]  # the rollout's forward under no_grad only


def selected_references(cfg: Config) -> list:
    """The reference patches ``(object, attribute, reference)`` that ``ab_only`` names (all: "")."""
    patches = _reference_paths()
    if cfg.ab_only:
        wanted = set(cfg.ab_only.split(","))
        unknown = wanted - {name for _, name, _ in patches}
        if unknown:
            raise SystemExit(f"error: --ab_only {cfg.ab_only!r}: unknown {sorted(unknown)}; use {[n for _, n, _ in patches]}")
        patches = [p for p in patches if p[1] in wanted]
    return patches


def ab_batch(cfg: Config, rng: np.random.Generator, batch: int) -> dict:
    """Paired CPU-time speed-up of the fast paths over their references (``Config.ab``)."""
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.sb3.algo import make_algo

    recipe, _, venv = build(batch, cfg.columns, cfg.seed, cfg.recipe)
    model = make_algo(recipe, VecMonitor(venv), None)
    assert recipe.trainer["hyper"]["policy_kwargs"]["kl_to_prior"]  # the reference evaluate assumes it
    patches = selected_references(cfg)
    fast = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    cpu: dict[str, list[float]] = {f"{p}_{m}": [] for p in ("env", "train") for m in ("fast", "reference")}
    for r in range(cfg.repeats + 1):  # the first round warms both up and is not kept
        for mode, swap in (("fast", fast), ("reference", patches)) if r % 2 else (("reference", patches), ("fast", fast)):
            for obj, name, fn in swap:
                setattr(obj, name, fn)
            for path in ("env", "train"):
                c = time.process_time()
                if path == "env":
                    env_episode(venv, rng)
                else:
                    model.learn(total_timesteps=cfg.columns * batch, reset_num_timesteps=False)
                if r:
                    cpu[f"{path}_{mode}"].append(time.process_time() - c)
    for obj, name, fn in fast:
        setattr(obj, name, fn)
    row: dict = {"cpu_seconds": {k: [round(x, 3) for x in v] for k, v in cpu.items()}}
    for path in ("env", "train"):
        ratio = np.array(cpu[f"{path}_reference"]) / np.array(cpu[f"{path}_fast"])
        row[f"{path}_speedup_paired_median"] = float(np.median(ratio))
        row[f"{path}_speedup_per_repeat"] = [round(float(x), 3) for x in ratio]
    print(f"batch {batch}: fast paths vs references, CPU time: env x{row['env_speedup_paired_median']:.3f}, "
          f"training x{row['train_speedup_paired_median']:.3f} (medians of paired repeats)", flush=True)
    return row


def main(cfg: Config) -> dict:
    import torch

    from rlcreate.levels.generators.column_lm import ColumnLM

    if cfg.recipe and not Path(cfg.recipe).is_file():
        raise SystemExit(f"error: --recipe {cfg.recipe!r}: no such recipe file; e.g. rlcreate/recipes/mario_tokens_variety.yaml")
    train_recipes(cfg.train_recipes)  # bad pairs fail before the models load
    load0 = os.getloadavg()[0]
    lm = ColumnLM.load()
    rng = np.random.default_rng(cfg.seed)
    result: dict = {"config": asdict(cfg), "machine": {
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
        "torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
        "load_avg_1min_at_start": load0}, "batches": {}}
    if cfg.reference and not cfg.ab:  # the whole run on the plain references (see Config.reference)
        for obj, name, fn in selected_references(cfg):
            setattr(obj, name, fn)
    for batch in [int(b) for b in cfg.batches.split(",")]:
        result["batches"][str(batch)] = ab_batch(cfg, rng, batch) if cfg.ab else bench_batch(cfg, lm, rng, batch)
    result["load_avg_1min_at_end"] = os.getloadavg()[0]
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))

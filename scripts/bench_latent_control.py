"""Benchmark: where MarioLatent-v1's control error comes from, the guide alone (no policy).

The shipped recipe's env (column LM decoding uniform noise, control channel, guide, deficits)
writes levels with a zero action (the untrained start's mean behaviour), with and without
``control_cap``, for several env seeds of 64 levels each. Per target (enemies, gaps per 16
columns): correlation and MAE between requested and written, the share of levels whose count is
over / at / under ``round(target x columns / 16)``, the mean written per quarter of the target
range (the scatter in numbers), the share of segments whose guide control sits at -1 or +1
(a saturated channel), and a scatter plot of requested vs written (PNG next to the JSON).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_control.py
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    n: int = 64
    """Levels per set (stepped in lockstep)."""
    seeds: str = "1,2,3"
    """Comma-separated env seeds (one set of ``n`` levels each)."""
    out: str = "benchmarks/latent_control.json"
    """Output JSON (the scatter PNG gets the same name with .png)."""


NAMES = ("enemies", "gaps")


def guide_levels(n: int, seed: int, cap: bool) -> dict:
    """``n`` levels written by the recipe's env with a zero action; targets, levels, guide controls."""
    from importlib import resources

    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.recipe import load_recipe

    recipe = load_recipe(Path(str(resources.files("rlcreate") / "recipes" / "mario_latent.yaml")))
    kw = {k: v for k, v in recipe.env_kwargs.items() if k not in ("control_cap", "preview", "playability_shaping")}
    zero = {"none": {"reward": "residual_prior", "weight": 0.0}}  # rewards do not change what is written
    venv = make_mario_latent_v1_vec(n, targets=dict(recipe.targets), reward=zero, seed=seed, control_cap=cap, **kw)
    venv.reset()
    core = venv.core
    a = np.zeros((n, venv.action_space.shape[0]), np.float32)
    controls = []
    for _ in range(core.n_segments):
        controls.append(core._controls(np.zeros((n, core.n_controls), np.float32)))
        _, _, _, infos = venv.step(a)
    return {
        "levels": np.stack([i["level"] for i in infos]),
        "targets": np.array([[i["targets"][k] for k in NAMES] for i in infos]),
        "controls": np.stack(controls, 1),  # (n, segments, 2)
    }


def summarise(sets: list[dict]) -> dict:
    from rlcreate.levels.rewards import TARGET_MEASURES

    out = {}
    for j, name in enumerate(NAMES):
        rows = []
        for s in sets:
            got = TARGET_MEASURES[name][0](s["levels"]).astype(np.float64)
            want = s["targets"][:, j]
            allowed = np.floor(want * s["levels"].shape[2] / 16 + 0.5)
            per16 = got * 16 / s["levels"].shape[2]
            rows.append((want, per16, got, allowed, s["controls"][:, :, j]))
        corr = [float(np.corrcoef(w, g)[0, 1]) for w, g, *_ in rows]
        want = np.concatenate([r[0] for r in rows])
        got = np.concatenate([r[1] for r in rows])
        count, allowed = np.concatenate([r[2] for r in rows]), np.concatenate([r[3] for r in rows])
        ctrl = np.concatenate([r[4] for r in rows])
        edges = np.linspace(want.min(), want.max() + 1e-9, 5)
        quarters = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (want >= lo) & (want < hi)
            quarters.append({"want_mean": float(want[m].mean()), "got_mean": float(got[m].mean()),
                             "got_sd": float(got[m].std()), "n": int(m.sum())})
        out[name] = {
            "corr_per_set": corr, "corr_mean": float(np.mean(corr)), "mae": float(np.abs(want - got).mean()),
            "over_share": float((count > allowed).mean()), "exact_share": float((count == allowed).mean()),
            "under_share": float((count < allowed).mean()), "by_quarter_of_target_range": quarters,
            "guide_at_minus_1": float((ctrl <= -0.999).mean()), "guide_at_plus_1": float((ctrl >= 0.999).mean()),
            "_scatter": (want, got),
        }
    return out


def main(cfg: Config) -> dict:
    import torch

    from rlcreate.benchmark import environment, finish, write_json

    torch.set_num_threads(1)
    env = environment(asdict(cfg))
    seeds = [int(s) for s in cfg.seeds.split(",") if s]
    result = {}
    for cap in (False, True):
        key = "guide_with_cap" if cap else "guide"
        result[key] = summarise([guide_levels(cfg.n, s, cap) for s in seeds])
        for name, r in result[key].items():
            print(f"{key:<15} {name:<8} corr {r['corr_mean']:+.3f} {[round(c, 3) for c in r['corr_per_set']]}  "
                  f"MAE {r['mae']:.3f}  over {r['over_share']:.0%} exact {r['exact_share']:.0%} "
                  f"under {r['under_share']:.0%}  guide at -1 {r['guide_at_minus_1']:.0%}", flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, name in zip(axes, NAMES):
        for key, colour in (("guide", "tab:red"), ("guide_with_cap", "tab:blue")):
            want, got = result[key][name]["_scatter"]
            ax.scatter(want, got, s=8, alpha=0.5, c=colour, label=f"{key} (corr {result[key][name]['corr_mean']:+.2f})")
        lim = [0, max(ax.get_xlim()[1], ax.get_ylim()[1])]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set(xlabel=f"requested {name} per 16 columns", ylabel="written", title=name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    png = Path(cfg.out).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    for key in result:
        for name in NAMES:
            result[key][name].pop("_scatter")
    out = {**finish(env), **result, "scatter_png": str(png)}
    write_json(cfg.out, out)
    print(f"wrote {cfg.out} and {png}")
    return out


if __name__ == "__main__":
    main(parse_config(Config))

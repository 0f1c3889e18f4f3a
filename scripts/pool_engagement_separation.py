"""Pool the engagement bench's separation over training seeds and judged request sets.

``bench_level_engagement_ppo.py`` judges 32 requests per training seed, too few for a per-seed CI
that clears 80%. This reads several of its JSONs (the same training config; for one training seed,
requests of different env seeds: ``--env_seed``), pairs every request's rising and flat slopes, and
reports per training seed and pooled the share of requests whose rising level's play-effort slope
exceeds its flat level's, under both readings of a lost play, with 95% CIs:

- ``ci_requests``: resampling requests (the judged policies held fixed);
- ``ci_seeds_and_requests``: resampling training seeds, then requests within each drawn seed, so the
  CI also covers how much the share moves from one training run to the next.

    python scripts/pool_engagement_separation.py --files a.json,b.json --out benchmarks/pooled.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: config keys that may differ between pooled files (where the runs live, which requests are judged, and how)
JUDGING_KEYS = {"n", "env_seed", "judge", "train", "out", "plays", "seed", "runs"}


@dataclass
class Config:
    files: str = ""
    """comma-separated bench_level_engagement_ppo.py JSONs (globs allowed)"""
    method: str = "ppo"
    """the judged set to pool (``ppo``, ``start``, ``best_of_8``, ...)"""
    draws: int = 4000
    """bootstrap resamples"""
    out: str = "benchmarks/level_engagement_pooled.json"


def load(files: str) -> list[dict]:
    """The bench JSONs named by ``files``; a missing file or one from another training config exits
    with one ``error:`` line (code 2)."""
    import glob
    import sys

    names = sorted({p for part in files.split(",") if part.strip() for p in glob.glob(part.strip())})
    if not names:
        print(f"error: --files {files!r}: no such bench JSON; give comma-separated paths or globs", file=sys.stderr)
        raise SystemExit(2)
    data = [dict(json.loads(Path(p).read_text()), file=p) for p in names]
    ref = {k: v for k, v in data[0]["config"].items() if k not in JUDGING_KEYS}
    for d in data[1:]:
        other = {k: v for k, v in d["config"].items() if k not in JUDGING_KEYS}
        if other != ref:
            diff = sorted(k for k in ref.keys() | other.keys() if ref.get(k) != other.get(k))
            print(f"error: {d['file']}: trained with other settings than {data[0]['file']} ({', '.join(diff)}); "
                  "pool runs of one training config only", file=sys.stderr)
            raise SystemExit(2)
    return data


def wins(data: list[dict], method: str, lost: str) -> dict[int, np.ndarray]:
    """Per training seed, 1 where a request's rising slope exceeds its flat one (every judged set)."""
    import sys

    by_seed: dict[int, list] = {}
    seen: set[tuple[int, int]] = set()
    for d in data:
        seed = d["config"]["seed"]
        env_seed = d["effort_model_data"].get("judged_env_seed", seed + 1)
        if (seed, env_seed) in seen:
            print(f"error: {d['file']}: training seed {seed} and env seed {env_seed} pooled twice", file=sys.stderr)
            raise SystemExit(2)
        seen.add((seed, env_seed))
        sets = d["sets"]
        if f"{method}_rising" not in sets:
            print(f"error: --method {method!r}: {d['file']} has no such set (it has {', '.join(sets)})", file=sys.stderr)
            raise SystemExit(2)
        r, f = np.array(sets[f"{method}_rising"][lost]["slopes"]), np.array(sets[f"{method}_flat"][lost]["slopes"])
        by_seed.setdefault(seed, []).extend((r > f).astype(float).tolist())
    return {s: np.array(v) for s, v in sorted(by_seed.items())}


def pooled(by_seed: dict[int, np.ndarray], draws: int, seed: int = 0) -> dict:
    """Pooled share with its CI over requests (``mean_ci``) and, for more than one training seed,
    over seeds then requests (a two-stage bootstrap, which scipy's bootstrap does not do)."""
    from rlcreate.levels.share import mean_ci

    groups = list(by_seed.values())
    every = np.concatenate(groups)
    out = {
        "share": round(float(every.mean()), 4),
        "n_requests": int(len(every)),
        "n_seeds": len(groups),
        "ci_requests": np.round(mean_ci(every, seed, draws)["ci"], 4).tolist(),
    }
    if len(groups) > 1:
        rng = np.random.default_rng(seed)
        two = np.empty(draws)
        for b in range(draws):
            picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
            two[b] = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked]).mean()
        out["ci_seeds_and_requests"] = np.percentile(two, [2.5, 97.5]).round(4).tolist()
    return out


def main(cfg: Config) -> dict:
    from rlcreate.levels.play_trace import LOST_READINGS

    data = load(cfg.files)
    result: dict = {"config": asdict(cfg), "files": [d["file"] for d in data], "readings": {}}
    for lost in LOST_READINGS:
        by_seed = wins(data, cfg.method, lost)
        per_seed = {str(s): pooled({s: w}, cfg.draws) for s, w in by_seed.items()}  # one seed: requests only
        result["readings"][lost] = {"per_seed": per_seed, "pooled": pooled(by_seed, cfg.draws)}
        p = result["readings"][lost]["pooled"]
        print(f"{lost:8s} pooled {p['share']:.3f} over {p['n_requests']} requests, {p['n_seeds']} seeds; "
              f"CI requests {p['ci_requests']}, seeds+requests {p['ci_seeds_and_requests']}")
        for s, row in per_seed.items():
            print(f"  seed {s}: {row['share']:.3f} of {row['n_requests']} {row['ci_requests']}")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))

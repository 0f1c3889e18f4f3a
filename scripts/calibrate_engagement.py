"""Record the A* agent's traced plays of human TRAINING windows: the calibration data of the
play-calibrated engagement reward (``rlcreate/levels/engagement.py``, the play scales).

Plays every ``width``-column training window at the given ``stride`` (never a DEV or TEST block)
once with the traced A* runner (:mod:`rlcreate.levels.play_trace`) and writes, per window, its index
among ``training_windows(width, stride)``, its first corpus column, its training span (overlapping
windows share one: group cross-validation by it), the outcome and the per-segment ticks and
take-offs. The shipped files: ``rlcreate/data/engagement_calibration.json`` (stride 128, 46
windows; the "play" and "play_ground" scales) and ``engagement_calibration_stride32.json`` (stride
32, 154 windows; "play_ground_s32"). The reward fits its effort model from such a file and the
windows' tiles; benchmarks that judge the reward by play must use other levels (generated ones,
DEV/TEST human windows).

The plays are deterministic (node budget), so windows already played in ``reuse`` (same width,
same first column) are copied from it, and ``check`` of them are replayed to confirm that. The file
is rewritten after every ``chunk`` plays, so an interrupted run keeps what it played (``played`` <
``windows_total``) and a rerun with ``reuse`` pointing at it resumes.

    OMP_NUM_THREADS=1 python scripts/calibrate_engagement.py   # stride 128: ~10 min on 2 busy cores
    OMP_NUM_THREADS=1 python scripts/calibrate_engagement.py --stride 32 \\
        --out rlcreate/data/engagement_calibration_stride32.json   # 108 new plays
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    width: int = 128
    """columns per played training window"""
    stride: int = 128
    """columns between window starts (128: no overlap)"""
    out: str = "rlcreate/data/engagement_calibration.json"
    """where the traces are written (the reward reads the shipped files)"""
    reuse: str = "rlcreate/data/engagement_calibration.json"
    """an earlier calibration file whose plays of the same windows are copied ('' for none)"""
    check: int = 2
    """reused windows replayed to confirm the plays are the same (0: none)"""
    chunk: int = 8
    """plays between rewrites of the output file"""


def _row(i: int, origin, t) -> dict:
    return {
        "index": i,
        "start": int(origin[0]),
        "span": int(origin[1]),
        "status": t.status,
        "ticks": t.ticks.astype(int).tolist(),
        "jumps": t.jumps.astype(int).tolist(),
        "fail_segment": t.fail_segment,
    }


def _reusable(path: str, width: int) -> dict[int, dict]:
    """Rows of an earlier calibration file by first corpus column (same window width only)."""
    from rlcreate.levels.corpus import training_window_origins

    if not path or not Path(path).exists():
        return {}
    data = json.loads(Path(path).read_text())
    if data["config"]["width"] != width:
        return {}
    origins = training_window_origins(width, data["config"]["stride"])
    return {int(origins[r["index"]][0]): r for r in data["windows"]}


def main(cfg: Config) -> dict:
    from rlcreate.levels import astar
    from rlcreate.levels.corpus import training_window_origins, training_windows
    from rlcreate.levels.play_trace import play_traces

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    w = training_windows(cfg.width, stride=cfg.stride)
    origins = training_window_origins(cfg.width, cfg.stride)
    old = _reusable(cfg.reuse, cfg.width)
    rows: dict[int, dict] = {}
    for i, (start, _) in enumerate(origins):
        if int(start) in old:
            r = old[int(start)]
            rows[i] = {**_row(i, origins[i], _as_trace(r)), "reused": True}
    todo = [i for i in range(len(w)) if i not in rows]
    # coarse-to-fine order: an interrupted run still covers the spans evenly
    todo.sort(key=lambda i: (int(origins[i][0]) % (2 * cfg.stride * 2), int(origins[i][0])))
    checks = sorted(rows)[: cfg.check]
    print(f"{len(w)} training windows: {len(rows)} reused from {cfg.reuse!r}, {len(todo)} to play", flush=True)
    out = {
        "config": asdict(cfg),
        "astar": astar.harness_settings(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load_avg_1min_at_start": load0},
        "windows_total": len(w),
    }

    def write() -> None:
        out["windows"] = [rows[i] for i in sorted(rows)]
        out["played"] = len(rows)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        Path(cfg.out).write_text(json.dumps(out, indent=1))

    if checks:
        traces = play_traces([w[i] for i in checks])
        if traces is None:
            raise SystemExit("error: java / javac not found; the traced A* runner needs a JDK")
        same = [
            _row(i, origins[i], t) == {k: v for k, v in rows[i].items() if k != "reused"}
            for i, t in zip(checks, traces)
        ]
        out["reuse_check"] = {"replayed": checks, "identical": same}
        print(f"replayed {len(checks)} reused windows: identical {same}", flush=True)
        if not all(same):
            raise SystemExit("error: replayed windows differ from the reused file; rerun with --reuse ''")
    for c in range(0, len(todo), max(cfg.chunk, 1)):
        part = todo[c : c + max(cfg.chunk, 1)]
        traces = play_traces([w[i] for i in part])
        if traces is None:
            raise SystemExit("error: java / javac not found; the traced A* runner needs a JDK")
        for i, t in zip(part, traces):
            rows[i] = _row(i, origins[i], t)
        write()
        print(f"{len(rows)}/{len(w)} played, {out['seconds']} s", flush=True)
    write()
    won = sum(r["status"] == "WIN" for r in rows.values())
    print(f"wrote {cfg.out}: {won}/{len(rows)} won, {out['seconds']} s")
    return out


def _as_trace(r: dict):
    from rlcreate.levels.play_trace import PlayTrace

    return PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))

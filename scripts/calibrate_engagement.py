"""Record the A* agent's traced plays of human TRAINING windows: the calibration data of the
play-calibrated engagement reward (``rlcreate/levels/engagement.py``, ``scale="play"``).

Plays every 128-column training window (stride 128; never a DEV or TEST block) once with the traced
A* runner (:mod:`rlcreate.levels.play_trace`) and writes, per window, its start index, the outcome
and the per-segment ticks and take-offs to ``rlcreate/data/engagement_calibration.json``. The
reward fits its effort model from this file and the windows' tiles; benchmarks that judge the
reward by play must use other levels (generated ones, DEV/TEST human windows).

    OMP_NUM_THREADS=1 python scripts/calibrate_engagement.py   # ~25 min on 2 busy cores
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Config:
    width: int = 128
    """columns per played training window"""
    stride: int = 128
    """columns between window starts (128: no overlap)"""
    out: str = "rlcreate/data/engagement_calibration.json"
    """where the traces are written (the reward reads this file)"""


def main(cfg: Config) -> dict:
    from rlcreate.levels import astar
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.play_trace import play_traces

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    w = training_windows(cfg.width, stride=cfg.stride)
    print(f"A* plays of {len(w)} training windows ...", flush=True)
    traces = play_traces(list(w))
    if traces is None:
        raise SystemExit("error: java / javac not found; the traced A* runner needs a JDK")
    out = {
        "config": asdict(cfg),
        "astar": astar.harness_settings(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load_avg_1min_at_start": load0},
        "windows": [
            {
                "index": i,
                "status": t.status,
                "ticks": t.ticks.astype(int).tolist(),
                "jumps": t.jumps.astype(int).tolist(),
                "fail_segment": t.fail_segment,
            }
            for i, t in enumerate(traces)
        ],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(cfg.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {cfg.out}: {sum(t.won for t in traces)}/{len(traces)} won, {out['seconds']} s")
    return out


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))

"""Engagement judged by play: the A* agent's run read segment by segment.

:func:`play_traces` plays levels with the A* agent (the fast runner, ``FastAstar --trace``: a
deterministic node budget and the entry platform of :mod:`rlcreate.levels.astar`) and records
Mario's x at every game tick and the ticks at which he left the ground. Per 16-column segment that
gives **time** (game ticks spent in it), **jumps** (take-offs in it) and **where the play failed**.
None of it uses the fast solver, so it judges the solver-based engagement reward
(:mod:`rlcreate.levels.engagement`) with different code and a different player.

:func:`segment_effort` turns a trace into one number per segment, ``ticks / 20 + jumps`` (an
unhindered run crosses a segment in ~20 ticks; each take-off is a decision), and a failed play
scores the segment where it ended with the rest of the play's time plus 10 and later segments as
missing (NaN). That reading makes the lost segment the last and, nearly always, the largest value
of the profile, so any loss from the third segment on reads as a rising curve, wherever the hard
part was; ``lost="drop"`` gives the second reading, effort over the segments the play *passed*
(the lost segment is missing too), with the place of the loss reported apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PlayTrace", "play_traces", "segment_effort", "effort_slope", "LOST_READINGS"]

SEGMENT = 16
PIXELS_PER_TILE = 16


@dataclass(frozen=True)
class PlayTrace:
    """One A* play of one level: ``status`` (WIN / LOSE / TIME_OUT), per-segment ``ticks`` and
    ``jumps`` (arrays over the level's 16-column segments), ``fail_segment`` (segment where a lost
    play ended, else -1)."""

    status: str
    ticks: np.ndarray
    jumps: np.ndarray
    fail_segment: int

    @property
    def won(self) -> bool:
        return self.status == "WIN"


def _parse(xs: str, takeoffs: str, status: str, width: int, pad: int) -> PlayTrace:
    x = np.array([int(v) for v in xs.split(",") if v], np.int64) if xs else np.zeros(0, np.int64)
    col = x // PIXELS_PER_TILE - pad
    k = width // SEGMENT
    seg = np.clip(col // SEGMENT, -1, k - 1)
    ticks = np.array([(seg == s).sum() for s in range(k)], np.float64)
    t_off = np.array([int(v) for v in takeoffs.split(",") if v], np.int64) if takeoffs else np.zeros(0, np.int64)
    t_off = t_off[t_off < len(seg)]
    jumps = np.array([(seg[t_off] == s).sum() for s in range(k)], np.float64)
    fail = -1 if status == "WIN" or len(seg) == 0 else int(max(seg[-1], 0))
    return PlayTrace(status, ticks, jumps, fail)


def play_traces(
    grids: Sequence[np.ndarray], workers: int = 2, budget_nodes: int | None = None, start_pad: int | None = None
) -> list[PlayTrace] | None:
    """One traced A* play per level (deterministic under the node budget); None when java or
    javac is missing (the trace needs the compiled runner)."""
    from rlcreate.levels import astar
    from rlcreate.levels.tiles import level_to_text

    java = shutil.which("java")
    javac = shutil.which("javac")
    if java is None or javac is None:
        return None
    budget_nodes = astar.BUDGET_NODES if budget_nodes is None else budget_nodes
    pad = astar.START_PAD if start_pad is None else start_pad
    grids = [np.asarray(g) for g in grids]
    classdir = astar._compiled_runner(javac)
    cmd = [
        java,
        f"-Xmx{astar.JVM_HEAP}",
        "-cp",
        f"{astar.jar_path()}{os.pathsep}{classdir}",
        "FastAstar",
        "--budget-nodes",
        str(budget_nodes),
        "--trace",
    ]
    with tempfile.TemporaryDirectory(prefix="rlcreate-trace-") as tmp:
        jobs = []
        for i, g in enumerate(grids):
            p = Path(tmp) / f"{i}.txt"
            p.write_text(level_to_text(astar.with_entry(g, pad)))
            jobs.append((str(i), p, astar.default_timer(g.shape[1])))
        chunks = [jobs[w::workers] for w in range(workers) if jobs[w::workers]]

        def run(chunk):
            stdin = "".join(f"{k}\t{p}\t{t}\t1\n" for k, p, t in chunk)
            return astar._launch(cmd, stdin, timeout=120 + sum(8 * t * budget_nodes / 2000 for *_, t in chunk))

        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            texts = list(pool.map(run, chunks))
    status: dict[str, str] = {}
    traces: dict[str, tuple[str, str]] = {}
    for text in texts:
        for line in text.splitlines():
            parts = line.split("\t")
            if parts[0] == "RESULT":
                status[parts[1]] = parts[3]
            elif parts[0] == "TRACE":
                traces[parts[1]] = (parts[3], parts[4] if len(parts) > 4 else "")
            elif parts[0] == "ERROR":
                raise astar.AstarRunError(f"the engine failed on a level: {line}")
    return [_parse(*traces[str(i)], status[str(i)], g.shape[1], pad) for i, g in enumerate(grids)]


LOST_READINGS = ("penalty", "drop")


def segment_effort(trace: PlayTrace, lost: str = "penalty") -> np.ndarray:
    """Per segment ``ticks / 20 + jumps``. A lost play: with ``lost="penalty"`` the segment where it
    ended gets +10 and later ones NaN; with ``lost="drop"`` that segment is NaN too (only passed
    segments are read)."""
    if lost not in LOST_READINGS:
        raise ValueError(f"lost = {lost!r}: use one of {LOST_READINGS}")
    e = trace.ticks / 20.0 + trace.jumps
    if trace.fail_segment >= 0:
        e = e.copy()
        e[trace.fail_segment] += 10.0
        e[trace.fail_segment + (lost == "penalty") :] = np.nan
    return e


def effort_slope(trace: PlayTrace, lost: str = "penalty") -> float:
    """Spearman correlation between segment index and :func:`segment_effort` over the segments the
    play reached (0 when fewer than 3 or constant): how the play's tension rises along the level."""
    from scipy.stats import spearmanr

    e = segment_effort(trace, lost)
    ok = np.isfinite(e)
    if ok.sum() < 3 or np.ptp(e[ok]) == 0:
        return 0.0
    return float(spearmanr(np.flatnonzero(ok), e[ok]).statistic)

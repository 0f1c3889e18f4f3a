"""Playability by the real A* agent: Robin Baumgarten's agent in the Mario AI Framework engine.

The engine and agent ship as ``mario_gpt/simulator/PlayAstar.jar`` in the ``mario-gpt`` package.
Its own entry point (``java -jar PlayAstar.jar LEVEL norender``) plays one level per JVM, with a
200-second game timer, paced at 30 frames/s even without rendering. We compile a small runner
(``rlcreate/java/FastAstar.java``) against the jar on first use; it calls the engine's private
``gameLoop`` with ``fps = 0`` (no sleeping) and plays many levels in one JVM. When ``javac`` is
missing we fall back to the jar's entry point (slow, 200 s timer).

**Harness settings** (measured in ``benchmarks/astar_harness.json``):

- *Search budget.* In the engine the agent searches for up to 40 ms of *wall-clock* time per game
  tick (``MarioGame.maxTime``, a compile-time constant), so a loaded CPU gives it less search and the
  same level is won on one run and lost on the next. The fast runner instead gives the agent a
  budget of ``budget_nodes`` search-node expansions per tick (default :data:`BUDGET_NODES` = 2000,
  about what 40 ms buys on an idle core here). Engine and agent use no randomness, so a play is then
  a pure function of the level: repeated plays agree and results do not move with machine load.
  ``budget_ms`` gives a wall-clock budget instead; neither gives the engine's own 40 ms timer.
  A larger budget buys little: 8000 nodes won 1 of 7 human windows lost at 1500, and a stuck
  play then costs ~5 min. A play under a node budget takes longer on a loaded machine (the
  budget is fixed work, not fixed time); the jar runner ignores the budget.
- *Entry platform.* With no start tile the engine spawns Mario in column 0 on the lowest floor of
  that column, or above the screen when column 0 holds no solid tile: a window cut out of a longer
  level over a gap kills Mario at once, and one cut on a raised platform must not be entered from
  the ground. Every level (human or generated alike) is played with ``start_pad`` (default
  :data:`START_PAD` = 3) columns prepended: a solid pillar whose top is level with the floor the
  engine would use in the first column that holds a solid tile (see :func:`with_entry`). Mario
  starts on it at the height where the level's first standable surface is, and still has to cross
  every column of the level. Completion is reported as a fraction of the level's own columns.
- *Timer.* :func:`default_timer` (width // 10 + 5 game-seconds) is not binding: wins of 128-column
  human windows finish with 8-12 of 17 game-seconds left, and the TIME_OUTs are stuck agents
  (doubling the timer ended three of them at the same completion, again as TIME_OUT).
- *Stall.* A stuck agent spends its whole search budget on every tick until the timer runs out:
  such a tick costs 10-100x a moving one, and one TIME_OUT cost as much as 10-40 won plays. By
  default a play ends as TIME_OUT (the engine's own ``timeout()``) once Mario has not passed his
  furthest x for :data:`STALL_TICKS` (200) ticks. Among 64 traced plays of policy levels the longest
  such wait before a win was 51 ticks; TIME_OUTs ended after 300-545 stuck ticks
  (``benchmarks/astar_stall.json`` compares both on human and generated levels). ``stall_ticks=None``
  plays to the timer, as every result before it.

``budget_nodes=None, start_pad=0`` reproduces the engine's own set-up (what rlcreate used before).

Results are cached by level content and settings in ``$RLCREATE_CACHE/astar_results.json``
(default cache folder ``~/.cache/rlcreate``); a cached level starts no JVM.

Public API: :func:`java_available`, :func:`run_astar`, :func:`astar_or_none`, :func:`default_timer`,
:func:`with_entry`, :func:`harness_settings`, :class:`AstarResult`, :class:`AstarSummary`, :class:`JavaMissingError`, :class:`AstarRunError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from rlcreate.errors import UserError
from rlcreate.levels.corpus import mario_gpt_dir
from rlcreate.levels.tiles import GROUND, HEIGHT, TILES, level_to_text
from rlcreate.safe_io import load_json

__all__ = [
    "AstarResult",
    "AstarSummary",
    "JavaMissingError",
    "AstarRunError",
    "AstarSettingsError",
    "java_available",
    "run_astar",
    "astar_or_none",
    "default_timer",
    "cache_dir",
    "jar_path",
    "MAX_TIMER",
    "MAX_COLUMNS",
    "JVM_HEAP",
    "parse_jar_output",
    "parse_runner_line",
    "RUNNERS",
    "BUDGET_NODES",
    "START_PAD",
    "with_entry",
    "harness_settings",
]

log = logging.getLogger(__name__)

STATUSES = ("WIN", "LOSE", "TIME_OUT")
#: "fast": FastAstar.java, unpaced, many levels per JVM; "jar": PlayAstar.jar's own main (paced,
#: 200 s timer, one JVM per play); "auto": fast when javac is present, else jar.
RUNNERS = ("auto", "fast", "jar")
_JAR_TIMER = 200  # PlayAstar.main hard-codes a 200-second game timer
_RUNNER_SOURCE = Path(__file__).resolve().parent.parent / "java" / "FastAstar.java"
#: Search-node expansions per game tick the agent gets by default (deterministic; see module doc).
BUDGET_NODES = 2000
#: Columns of entry platform prepended to every level by default (see :func:`with_entry`).
START_PAD = 3
#: A play ends as TIME_OUT once Mario has not passed his furthest x for this many ticks (~6
#: game-seconds; see module doc): a stuck agent's ticks cost 10-100x a moving one's.
STALL_TICKS = 200
#: Tiles the engine's ``MarioLevel.isSolid`` counts when it picks Mario's spawn row (not ``b``).
_ENGINE_SOLID = frozenset("XS?Q<>[]B")
_JAVA_HINT = (
    "install a Java 17 runtime, e.g. apt-get install openjdk-17-jre-headless "
    "(openjdk-17-jdk-headless adds javac for the fast runner); the A* check is skipped"
)


class JavaMissingError(UserError, RuntimeError):
    """No ``java`` executable on PATH; the A* agent cannot run. Callers catch this and skip."""


class AstarRunError(RuntimeError, UserError):
    """The Java process failed, ran out of its heap or time, or printed no result; the message says
    which (one ``error:`` line at the command line)."""


class AstarSettingsError(UserError):
    """A bad argument to :func:`run_astar` (runs, workers, runner, timer, grids)."""


@dataclass(frozen=True)
class AstarResult:
    """One play of one level by the A* agent."""

    status: str  # 'WIN' | 'LOSE' | 'TIME_OUT'
    completion: float  # fraction of the level's length Mario got through, 0..1
    jumps: int
    kills: int
    coins: int
    lives: int
    runtime_s: float  # wall-clock seconds of this play (JVM start-up excluded for the fast runner)

    @property
    def won(self) -> bool:
        return self.status == "WIN"


@dataclass(frozen=True)
class AstarSummary:
    """``runs`` plays of one level, aggregated."""

    level_hash: str
    width: int
    results: tuple[AstarResult, ...]

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def wins(self) -> int:
        return sum(r.won for r in self.results)

    @property
    def win_rate(self) -> float:
        return self.wins / self.runs

    @property
    def mean_completion(self) -> float:
        return float(np.mean([r.completion for r in self.results]))

    @property
    def mean_runtime_s(self) -> float:
        return float(np.mean([r.runtime_s for r in self.results]))

    @property
    def statuses(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}


def cache_dir() -> Path:
    """``$RLCREATE_CACHE`` or ``~/.cache/rlcreate`` (created on demand by the callers that write)."""
    return Path(os.environ.get("RLCREATE_CACHE") or Path.home() / ".cache" / "rlcreate")


def jar_path() -> Path:
    return mario_gpt_dir() / "simulator" / "PlayAstar.jar"


def java_available(java: str | None = None) -> bool:
    """Whether a ``java`` executable (or the given path) can be found."""
    return shutil.which(java or "java") is not None


#: Most game-seconds one play gets, whatever the level's width (about 2.5 min of wall time for a
#: stuck agent): a 20,000-column level must not hold ``play`` for most of an hour.
MAX_TIMER = 120
#: Widest level the A* agent is given (SMB1's levels are a few hundred columns). Its memory grows
#: with the width: measured here, a 600-column level played within a 512 MB heap and a 1,000-column
#: one ran out of it. Wider levels are refused before a JVM starts.
MAX_COLUMNS = 600
#: Heap of every JVM the agent runs in (``-Xmx``): a run never takes the machine's memory.
JVM_HEAP = "512m"
#: One GC thread and two JIT compiler threads per JVM (the same plays: Java 17's arithmetic is strict):
#: with the defaults a JVM playing next to the demo's training slowed the column LM by ~27-42%
#: on this 2-core machine, with these by ~4-8% (ad hoc, LM sampling timed alone and next to a JVM)
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:CICompilerCount=2")


def default_timer(width: int) -> int:
    """Game-seconds allowed for a level of ``width`` columns: ``width // 10 + 5``, at most
    :data:`MAX_TIMER` (levels wider than ~1,150 columns end as TIME_OUT).

    The agent needs about 5 game-seconds per 100 columns of plain running; a stuck agent uses its
    whole 40 ms search budget every tick, so the timer also bounds the wall time of a hopeless level
    (about 1.2 s of wall time per game-second).
    """
    return min(width // 10 + 5, MAX_TIMER)


def _engine_floor(column: np.ndarray) -> int | None:
    """The row the engine spawns Mario on in this column (``MarioLevel.findFirstFloor``: the first
    non-solid cell above the lowest solid tile), or None when the column holds no solid tile."""
    solid = np.array([TILES[t] in _ENGINE_SOLID for t in column])
    if not solid.any():
        return None
    lowest = int(np.flatnonzero(solid)[-1])
    above = np.flatnonzero(~solid[:lowest])
    return int(above[-1]) if above.size else -1


def with_entry(grid: np.ndarray, pad: int = START_PAD) -> np.ndarray:
    """``grid`` with ``pad`` columns of entry platform prepended (returned as a new grid).

    The platform is solid ground (``X``) from just below row ``r`` down to the bottom, where ``r`` is
    the row the engine would spawn Mario on in the first column that holds a solid tile (row 12, a
    one-tile ground, when no column does). The engine then spawns Mario on the platform, level with
    the level's first standable surface, instead of above a gap or under a raised start."""
    grid = np.asarray(grid)
    if pad <= 0:
        return grid
    row = next((r for r in map(_engine_floor, grid.T) if r is not None), HEIGHT - 2)
    platform = np.zeros((HEIGHT, pad), dtype=grid.dtype)
    platform[max(row, 0) + 1 :, :] = GROUND
    return np.concatenate([platform, grid], axis=1)


def harness_settings(
    budget_nodes: int | None = BUDGET_NODES,
    budget_ms: int | None = None,
    start_pad: int = START_PAD,
    stall_ticks: int | None = STALL_TICKS,
) -> dict:
    """The settings a measurement ran with, for benchmark JSON (``budget`` as the runner sees it)."""
    return {
        "budget": _budget_tag(budget_nodes, budget_ms),
        "start_pad": start_pad,
        "timer": "width // 10 + 5 game-seconds",
        "stall_ticks": stall_ticks,
        "deterministic": budget_nodes is not None,
    }


def _budget_tag(budget_nodes: int | None, budget_ms: int | None) -> str:
    if budget_nodes is not None and budget_ms is not None:
        raise AstarSettingsError("give budget_nodes or budget_ms, not both")
    for name, value in (("budget_nodes", budget_nodes), ("budget_ms", budget_ms)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise AstarSettingsError(f"{name} must be a positive integer or None, got {value!r}")
    if budget_nodes is not None:
        return f"nodes{budget_nodes}"
    return f"ms{budget_ms}" if budget_ms is not None else "engine40ms"


# ----------------------------------------------------------------------------------------------
# output parsing

_JAR_PATTERNS = {
    "status": r"Game Status:\s*(\w+)",
    "completion": r"Percentage Completion:\s*([-\d.Ee]+)",
    "lives": r"Lives:\s*(-?\d+)",
    "coins": r"Coins:\s*(-?\d+)",
    "kills": r"Total Kills:\s*(-?\d+)",
    "jumps": r"Jumps:\s*(-?\d+)",
}


def parse_jar_output(text: str, runtime_s: float = float("nan")) -> AstarResult:
    """Parse what ``java -jar PlayAstar.jar LEVEL norender`` prints into an :class:`AstarResult`."""
    found = {}
    for field, pattern in _JAR_PATTERNS.items():
        m = re.search(pattern, text)
        if m is None:
            raise AstarRunError(f"PlayAstar output has no {field!r} ({pattern!r}); output was:\n{text[-1500:]}")
        found[field] = m.group(1)
    if found["status"] not in STATUSES:
        raise AstarRunError(f"unknown game status {found['status']!r}; expected one of {STATUSES}")
    return AstarResult(
        status=found["status"],
        completion=float(found["completion"]),
        jumps=int(found["jumps"]),
        kills=int(found["kills"]),
        coins=int(found["coins"]),
        lives=int(found["lives"]),
        runtime_s=runtime_s,
    )


def parse_runner_line(line: str) -> tuple[str, int, AstarResult]:
    """Parse one ``RESULT`` line of FastAstar into ``(key, run, result)``."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 11 or parts[0] != "RESULT" or parts[3] not in STATUSES:
        raise AstarRunError(f"FastAstar printed an unexpected line: {line!r}")
    key, run, status, completion, jumps, kills, coins, lives, _remaining_ms, seconds = parts[1:]
    return (
        key,
        int(run),
        AstarResult(status, float(completion), int(jumps), int(kills), int(coins), int(lives), float(seconds)),
    )


# ----------------------------------------------------------------------------------------------
# the subprocess layer (one function, so tests can count JVM launches)


def _launch(cmd: list[str], stdin_text: str | None, timeout: float) -> str:
    """Run one Java process; return its stdout or raise AstarRunError with its stderr tail."""
    try:
        proc = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AstarRunError(f"{cmd[0]} ran past {timeout:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise _exit_error(cmd, proc.returncode, proc.stderr)
    return proc.stdout


def _exit_error(cmd: list[str], code: int, stderr: str) -> AstarRunError:
    """The error for a Java process that exited with ``code``: out of heap, or its stderr's tail."""
    if "OutOfMemoryError" in stderr:
        return AstarRunError(
            f"the A* agent ran out of its -Xmx{JVM_HEAP} Java heap (rlcreate.levels.astar.JVM_HEAP); "
            "play narrower levels, or raise JVM_HEAP if this machine has the memory"
        )
    tail = " ".join(stderr[-600:].split())
    return AstarRunError(f"{cmd[0]} exited with code {code} ({tail}); check the Java runtime (Java 17) and the level")


class _Runner:
    """One FastAstar JVM fed a job at a time: ``play`` writes a job line and returns the ``RESULT``
    (or ``ERROR``) lines of its ``runs`` plays; past ``timeout`` seconds the JVM is killed."""

    def __init__(self, cmd: list[str]):
        self.cmd = cmd
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file: a full stderr pipe would block the JVM
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1
        )

    def play(self, job: str, runs: int, timeout: float) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        killer = threading.Timer(timeout, self.proc.kill)
        killer.start()
        try:
            self.proc.stdin.write(job + "\n")
            self.proc.stdin.flush()
            lines: list[str] = []
            while len(lines) < runs:
                line = self.proc.stdout.readline()
                if not line:
                    self._failed(timeout, killed=not killer.is_alive())
                if line.startswith(("RESULT", "ERROR")):
                    lines.append(line)
            return lines
        except BrokenPipeError:
            self._failed(timeout, killed=not killer.is_alive())
        finally:
            killer.cancel()

    def _failed(self, timeout: float, killed: bool) -> NoReturn:
        if killed:
            raise AstarRunError(f"{self.cmd[0]} ran past {timeout:.0f} s: {' '.join(self.cmd)}")
        code = self.proc.wait()
        self.stderr.seek(0)
        raise _exit_error(self.cmd, code, self.stderr.read())

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.stderr.close()

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_runner(cmd: list[str]) -> _Runner:
    """A FastAstar JVM (one function, so tests can fake the JVM and count launches)."""
    return _Runner(cmd)


def _compiled_runner(javac: str | None) -> Path | None:
    """Folder holding FastAstar.class compiled against the jar (compiled once, then reused)."""
    if javac is None:
        return None
    source = _RUNNER_SOURCE.read_bytes()
    jar = jar_path()
    tag = hashlib.sha256(source + str(jar.stat().st_size).encode()).hexdigest()[:12]
    target = cache_dir() / "java" / f"fastastar-{tag}"
    if (target / "FastAstar.class").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    _launch([javac, f"-J-Xmx{JVM_HEAP}", "-cp", str(jar), "-d", str(build), str(_RUNNER_SOURCE)], None, timeout=120)
    try:
        build.rename(target)  # atomic; a concurrent compile that won the race is just as good
    except OSError:
        shutil.rmtree(build, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------------------------
# cache


def _cache_file() -> Path:
    return cache_dir() / "astar_results.json"


def _valid_entry(results: object) -> bool:
    fields = set(AstarResult.__dataclass_fields__)
    return isinstance(results, list) and all(isinstance(d, dict) and set(d) == fields for d in results)


def _load_cache() -> dict[str, list[dict]]:
    """The cached results; a corrupt or foreign cache file is discarded (logged), never fatal."""
    path = _cache_file()
    try:
        data = load_json(path, "A* cache")  # size and depth caps
    except UserError as exc:  # JSON / UTF-8 errors, too large, a folder in its place, no permission
        if not path.exists():
            return {}
        log.warning("A* cache %s is unreadable (%s); ignoring it, it will be rebuilt", path, type(exc).__name__)
        return {}
    if not isinstance(data, dict):
        log.warning("A* cache %s does not hold a mapping; ignoring it, it will be rebuilt", path)
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and _valid_entry(v)}


def _save_cache(new: dict[str, list[dict]]) -> None:
    """Merge ``new`` into the cache file (re-read first: other processes may have written)."""
    data = _load_cache()
    for key, results in new.items():
        if len(results) > len(data.get(key, [])):
            data[key] = results
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():  # something else took the name: the cache is only an optimisation
            raise IsADirectoryError(str(path))
        fd, tmp = tempfile.mkstemp(prefix="astar-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("A* results not cached (%s: %s)", type(exc).__name__, exc)


# ----------------------------------------------------------------------------------------------
# running


def _budget_args(budget: str) -> list[str]:
    """FastAstar options for a budget tag from :func:`_budget_tag`."""
    if budget.startswith("nodes"):
        return ["--budget-nodes", budget[5:]]
    if budget.startswith("ms"):
        return ["--budget-ms", budget[2:]]
    return []


def _wall_per_game_second(budget: str) -> float:
    """Upper bound on wall seconds per game-second of a stuck agent (a hang guard, not a limit on
    normal plays): the engine ticks ~33 times a game-second; a wall-clock budget of 40 ms takes
    ~1.3 s; a node budget takes ~20 us per expansion on an idle core here, allowed 4x that."""
    if budget.startswith("nodes"):
        return 1.5 * 4 * int(budget[5:]) / 2000
    if budget.startswith("ms"):
        return 1.5 * max(1.0, int(budget[2:]) / 40)
    return 1.5


def _play_fast(
    classdir: Path,
    java: str,
    jobs: list[tuple[str, Path, int, int]],
    workers: int,
    budget: str = "engine40ms",
    stall_ticks: int | None = None,
) -> dict[str, list[AstarResult]]:
    """Play jobs (key, level file, timer, runs) in ``workers`` JVMs running FastAstar, each JVM
    taking the next job when it has finished one: a stuck agent's play costs ~20x a won one, so a
    fixed share of the jobs per JVM leaves one JVM playing alone at the end, and a JVM per job costs
    its start and warm-up (~2x the wall time of 6 plays in one JVM here)."""
    pending = sorted(jobs, key=lambda j: -j[2] * j[3])  # longest first
    cmd = [java, f"-Xmx{JVM_HEAP}", *JVM_FLAGS, "-cp", f"{jar_path()}{os.pathsep}{classdir}", "FastAstar"]
    cmd += [*_budget_args(budget), *(["--stall-ticks", str(stall_ticks)] if stall_ticks else [])]
    per_game_second = _wall_per_game_second(budget)
    lock = threading.Lock()

    def next_job() -> tuple[str, Path, int, int] | None:
        with lock:
            return pending.pop(0) if pending else None

    def serve() -> list[str]:
        with _open_runner(cmd) as runner:
            lines: list[str] = []
            while (job := next_job()) is not None:
                key, path, t, n = job
                lines += runner.play(f"{key}\t{path}\t{t}\t{n}", n, 60 + per_game_second * t * n + 5 * n)
            return lines

    out: dict[str, list[AstarResult]] = {k: [] for k, *_ in jobs}
    n_jvms = max(1, min(workers, len(jobs)))
    with ThreadPoolExecutor(max_workers=n_jvms) as pool:
        for lines in pool.map(lambda _: serve(), range(n_jvms)):
            for line in lines:
                if line.startswith("ERROR"):
                    raise AstarRunError(f"the engine failed on a level: {line.strip()}")
                key, _, result = parse_runner_line(line)
                out[key].append(result)
    return out


def _play_jar(java: str, jobs: list[tuple[str, Path, int, int]], workers: int) -> dict[str, list[AstarResult]]:
    """Play jobs with PlayAstar.jar's own main: one paced JVM per play, 200 s game timer."""
    plays = [(k, p) for k, p, _, n in jobs for _ in range(n)]

    def play(item):
        key, path = item
        start = time.perf_counter()
        text = _launch(
            [java, f"-Xmx{JVM_HEAP}", "-jar", str(jar_path()), str(path), "norender"],
            None,
            timeout=60 + 1.5 * _JAR_TIMER,
        )
        return key, parse_jar_output(text, runtime_s=time.perf_counter() - start)

    out: dict[str, list[AstarResult]] = {k: [] for k, *_ in jobs}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for key, result in pool.map(play, plays):
            out[key].append(result)
    return out


def _as_grids(grids) -> list[np.ndarray]:
    if isinstance(grids, np.ndarray):
        if grids.ndim == 2:
            raise AstarSettingsError(
                f"run_astar takes a batch of grids; got one grid of shape {grids.shape}: "
                "wrap it in a list, e.g. run_astar([grid])"
            )
        if grids.ndim != 3:
            raise AstarSettingsError(
                f"run_astar takes grids of shape (n, 14, W) or a list of (14, W); got {grids.shape}"
            )
    return [np.asarray(g) for g in grids]


def _own_completion(result: AstarResult, width: int, pad: int) -> AstarResult:
    """Completion of a play of the padded level as a fraction of the level's own columns (the
    engine reports Mario's x over the exit column's x, padding included)."""
    if pad <= 0 or result.won:
        return result
    own = (result.completion * (width + pad - 1) - pad) / max(width - 1, 1)
    return AstarResult(**{**asdict(result), "completion": float(min(max(own, 0.0), 1.0))})


def run_astar(
    grids: Sequence[np.ndarray] | np.ndarray,
    runs: int = 1,
    workers: int = 2,
    cache: bool = True,
    timer: int | None = None,
    runner: str = "auto",
    java: str | None = None,
    budget_nodes: int | None = BUDGET_NODES,
    budget_ms: int | None = None,
    start_pad: int = START_PAD,
    stall_ticks: int | None = STALL_TICKS,
) -> list[AstarSummary]:
    """Play each level ``runs`` times with the A* agent; one :class:`AstarSummary` per grid, in order.

    Args:
        grids: ``(n, 14, W)`` array or a list of ``(14, W_i)`` tile-id grids.
        runs: plays per level. With a node budget (the default) plays are deterministic and repeat
            exactly; with ``budget_ms`` or the engine's timer they vary with load: average several.
        workers: Java processes in parallel (levels are spread over them).
        cache: reuse and store results in ``cache_dir()/astar_results.json``, keyed by the level's
            text, runner (and the runner's source), timer, budget and entry padding. A cached level
            with at least ``runs`` plays starts no JVM.
        timer: game-seconds per play; default :func:`default_timer` of the level's own width
            (width // 10 + 5). The jar runner ignores it (its main hard-codes 200 s).
        runner: "fast" (needs javac), "jar", or "auto" (fast when javac is found).
        java: path of the java executable; default: ``java`` on PATH.
        budget_nodes: search-node expansions per game tick (default :data:`BUDGET_NODES`).
        budget_ms: wall-clock milliseconds per game tick instead (set ``budget_nodes=None``).
            With both None the agent gets the engine's own 40 ms. The jar runner ignores both.
        start_pad: columns of entry platform prepended to every level (:func:`with_entry`);
            0 plays the level as it is (Mario spawns in its column 0).
        stall_ticks: end a play as TIME_OUT once Mario has not passed his furthest x for this many
            game ticks (default :data:`STALL_TICKS`; None: play to the game timer, the plays of
            every result before it). The jar runner ignores it.

    Raises:
        JavaMissingError: no java executable; the message says what to install.
    """
    if runs < 1 or workers < 1:
        raise AstarSettingsError(f"runs and workers must be >= 1, got runs={runs}, workers={workers}")
    if runner not in RUNNERS:
        raise AstarSettingsError(f"runner must be one of {RUNNERS}, got {runner!r}")
    if timer is not None and timer < 1:
        raise AstarSettingsError(f"timer is in game-seconds and must be >= 1, got {timer}; None picks width // 10 + 5")
    if start_pad < 0:
        raise AstarSettingsError(f"start_pad is a number of columns >= 0, got {start_pad}")
    if stall_ticks is not None and (not isinstance(stall_ticks, (int, np.integer)) or stall_ticks < 1):
        raise AstarSettingsError(f"stall_ticks must be a positive integer or None, got {stall_ticks!r}")
    budget = _budget_tag(budget_nodes, budget_ms)
    grids = _as_grids(grids)
    wide = max((g.shape[1] for g in grids), default=0)
    if wide > MAX_COLUMNS:
        raise AstarSettingsError(
            f"a level of {wide} columns is wider than the A* agent's limit of {MAX_COLUMNS} "
            f"columns (rlcreate.levels.astar.MAX_COLUMNS; its JVM runs with -Xmx{JVM_HEAP}); "
            "cut the level into pieces and play each"
        )
    texts = [level_to_text(with_entry(g, start_pad)) for g in grids]

    java_exe = shutil.which(java or "java")
    javac_exe = None
    if runner != "jar" and java_exe is not None:
        sibling = Path(java_exe).resolve().parent / "javac"
        javac_exe = str(sibling) if sibling.exists() else shutil.which("javac")
        if runner == "fast" and javac_exe is None:
            raise JavaMissingError(
                "runner='fast' compiles FastAstar.java and needs javac: install a JDK, "
                "e.g. apt-get install openjdk-17-jdk-headless, or use runner='jar'"
            )
    mode = "fast" if (runner != "jar" and javac_exe is not None) else "jar"

    timers = [_JAR_TIMER if mode == "jar" else (timer or default_timer(g.shape[1])) for g in grids]
    hashes = [hashlib.sha256(level_to_text(g).encode()).hexdigest()[:20] for g in grids]
    # every setting that changes a play is in the key: results made with other settings (or by an
    # older FastAstar) are never reused
    setting = (
        f"{mode}-{hashlib.sha256(_RUNNER_SOURCE.read_bytes()).hexdigest()[:8]}|{budget}" if mode == "fast" else "jar"
    )
    stall = f"|s{stall_ticks}" if (mode == "fast" and stall_ticks) else ""
    keys = [f"{h}|{setting}|t{t}|p{start_pad}{stall}" for h, t in zip(hashes, timers)]

    stored = _load_cache() if cache else {}
    have = {k: [AstarResult(**d) for d in stored.get(k, [])] for k in set(keys)}
    missing = {k: runs - len(have[k]) for k in set(keys) if len(have[k]) < runs}
    if missing:
        if java_exe is None:
            raise JavaMissingError(f"no '{java or 'java'}' executable found on PATH: {_JAVA_HINT}")
        with tempfile.TemporaryDirectory(prefix="rlcreate-astar-") as tmp:
            jobs: list[tuple] = []
            for key, text, t in zip(keys, texts, timers):
                if key in missing and all(j[0] != key for j in jobs):
                    path = Path(tmp) / f"{len(jobs)}.txt"
                    path.write_text(text)
                    jobs.append((key, path, t, missing[key]))
            runner_dir = _compiled_runner(javac_exe) if mode == "fast" else None
            if runner_dir is not None:  # mode "fast" means javac was found
                played = _play_fast(runner_dir, java_exe, jobs, workers, budget, stall_ticks)
            else:
                played = _play_jar(java_exe, jobs, workers)
        width_of = {k: g.shape[1] for k, g in zip(keys, grids)}
        for key, results in played.items():
            have[key].extend(_own_completion(r, width_of[key], start_pad) for r in results)
        if cache:
            _save_cache({k: [asdict(r) for r in have[k]] for k in played})
    return [AstarSummary(h, g.shape[1], tuple(have[k][:runs])) for h, g, k in zip(hashes, grids, keys)]


_warned_missing = False


def astar_or_none(grids, **kwargs) -> list[AstarSummary] | None:
    """:func:`run_astar`, or None (and one logged warning per process) when java is missing."""
    global _warned_missing
    try:
        return run_astar(grids, **kwargs)
    except JavaMissingError as exc:
        if not _warned_missing:
            log.warning("A* playability check skipped: %s", exc)
            _warned_missing = True
        return None

"""The A* harness settings: entry platform, search budget reaching the runner, determinism of a
node budget, and a cache that never reuses results made with other settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rlcreate.levels import astar
from rlcreate.levels.tiles import CHAR_TO_ID, GROUND, HEIGHT

X, E = CHAR_TO_ID["X"], CHAR_TO_ID["E"]
needs_javac = pytest.mark.skipif(shutil.which("java") is None or shutil.which("javac") is None,
                                 reason="the fast A* runner needs a Java 17 JDK (java and javac)")


def flat(width: int) -> np.ndarray:
    g = np.zeros((HEIGHT, width), np.int8)
    g[HEIGHT - 1] = X
    return g


def spawn_row(grid: np.ndarray) -> int:
    """The row the engine spawns Mario on: its findFirstFloor of column 0."""
    return astar._engine_floor(grid[:, 0])


# ----------------------------------------------------------------------------------------------
# entry platform (pure numpy)

def test_entry_over_a_gap_puts_ground_under_the_spawn():
    level = flat(30)
    level[HEIGHT - 1, :5] = 0  # the window starts over a 5-column gap
    assert astar._engine_floor(level[:, 0]) is None  # as it is, Mario would spawn above the screen
    padded = astar.with_entry(level, pad=3)
    assert padded.shape == (HEIGHT, 33) and np.array_equal(padded[:, 3:], level)
    assert (padded[HEIGHT - 1, :3] == GROUND).all() and (padded[:HEIGHT - 1, :3] == 0).all()
    assert spawn_row(padded) == HEIGHT - 2  # standing on the ground row, level with column 5's floor


def test_entry_is_level_with_a_raised_first_floor():
    level = np.zeros((HEIGHT, 30), np.int8)
    level[8, :4] = X            # the window starts on a platform at row 8, over a gap
    level[HEIGHT - 1, 10:] = X  # ground further on
    padded = astar.with_entry(level, pad=3)
    assert (padded[8:, :3] == GROUND).all() and (padded[:8, :3] == 0).all()  # top level with row 8
    assert spawn_row(padded) == spawn_row(level) == 7


def test_entry_uses_the_first_column_with_a_solid_tile_and_defaults():
    level = np.zeros((HEIGHT, 20), np.int8)
    level[5:, 6:8] = X  # gap, then a wall of height 9 whose top is the first floor
    assert spawn_row(astar.with_entry(level, pad=2)) == 4
    empty = np.zeros((HEIGHT, 10), np.int8)  # nothing solid at all: a one-tile ground
    assert spawn_row(astar.with_entry(empty)) == HEIGHT - 2 and astar.with_entry(empty).shape[1] == 10 + astar.START_PAD
    assert np.array_equal(astar.with_entry(level, pad=0), level)


def test_completion_is_a_fraction_of_the_levels_own_columns():
    r = astar.AstarResult("LOSE", completion=(3 + 20) / (40 + 3 - 1), jumps=0, kills=0, coins=0, lives=0,
                          runtime_s=0.1)
    assert astar._own_completion(r, width=40, pad=3).completion == pytest.approx(20 / 39)
    early = astar.AstarResult("LOSE", 1 / 42, 0, 0, 0, 0, 0.1)  # died on the entry platform
    assert astar._own_completion(early, width=40, pad=3).completion == 0.0
    assert astar._own_completion(r, width=40, pad=0) == r


def test_bad_harness_settings_are_refused():
    with pytest.raises(astar.AstarSettingsError, match="not both"):
        astar.run_astar([flat(16)], budget_nodes=100, budget_ms=40)
    with pytest.raises(astar.AstarSettingsError, match="budget_nodes must be a positive integer"):
        astar.run_astar([flat(16)], budget_nodes=0)
    with pytest.raises(astar.AstarSettingsError, match="start_pad"):
        astar.run_astar([flat(16)], start_pad=-1)
    assert astar.harness_settings() == {"budget": f"nodes{astar.BUDGET_NODES}", "start_pad": astar.START_PAD,
                                        "timer": "width // 10 + 5 game-seconds",
                                        "stall_ticks": astar.STALL_TICKS, "deterministic": True}
    assert astar.harness_settings(budget_nodes=None, start_pad=0)["budget"] == "engine40ms"


# ----------------------------------------------------------------------------------------------
# the budget reaches the runner, and the cache key holds every setting (runner faked: no JVM)

@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    """Replace each JVM with a recorder that answers every job with a WIN; returns, per JVM, its
    command and the level texts it was given."""
    monkeypatch.setenv("RLCREATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(astar, "_compiled_runner", lambda javac: tmp_path)
    monkeypatch.setattr(astar.shutil, "which", lambda name: f"/usr/bin/{name}")
    calls = []

    class FakeRunner:
        def __init__(self, cmd):
            self.call = {"cmd": cmd, "levels": []}
            calls.append(self.call)

        def play(self, job, runs, timeout):
            key, path, _, n = job.split("\t")
            self.call["levels"].append(Path(path).read_text())
            assert int(n) == runs and timeout > 0
            return [f"RESULT\t{key}\t{r}\tWIN\t1.0\t3\t0\t0\t1\t9000\t0.5\n" for r in range(runs)]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(astar, "_open_runner", FakeRunner)
    return calls


def test_budget_argument_reaches_the_runner(fake_runner):
    astar.run_astar([flat(16)], cache=False)
    astar.run_astar([flat(16)], cache=False, budget_nodes=None, budget_ms=80)
    astar.run_astar([flat(16)], cache=False, budget_nodes=None)
    astar.run_astar([flat(16)], cache=False, stall_ticks=None)
    opts = [c["cmd"][c["cmd"].index("FastAstar") + 1:] for c in fake_runner]
    stall = ["--stall-ticks", str(astar.STALL_TICKS)]
    assert opts == [["--budget-nodes", str(astar.BUDGET_NODES)] + stall, ["--budget-ms", "80"] + stall, stall,
                    ["--budget-nodes", str(astar.BUDGET_NODES)]]
    with pytest.raises(astar.AstarSettingsError, match="stall_ticks must be a positive integer or None, got 0"):
        astar.run_astar([flat(16)], stall_ticks=0)


def test_runner_gets_the_padded_level(fake_runner):
    level = flat(16)
    level[HEIGHT - 1, :4] = 0
    astar.run_astar([level], cache=False)
    astar.run_astar([level], cache=False, start_pad=0)
    padded, plain = (c["levels"][0].splitlines() for c in fake_runner)
    assert [len(r) for r in (padded[0], plain[0])] == [16 + astar.START_PAD, 16]
    assert padded[-1].startswith("XXX----") and plain[-1].startswith("----")


def test_cache_is_not_shared_between_settings(fake_runner):
    level = flat(20)
    astar.run_astar([level])
    astar.run_astar([level])  # same settings: served from the cache
    assert len(fake_runner) == 1
    astar.run_astar([level], budget_nodes=500)
    astar.run_astar([level], start_pad=0)
    astar.run_astar([level], budget_nodes=None, budget_ms=40)
    astar.run_astar([level], timer=30)
    astar.run_astar([level], stall_ticks=None)
    assert len(fake_runner) == 6
    astar.run_astar([level], budget_nodes=500)  # each of those is cached under its own key
    astar.run_astar([level], stall_ticks=None)
    assert len(fake_runner) == 6


def _python_runner(script: str) -> astar._Runner:
    import sys

    return astar._Runner([sys.executable, "-c", script])


def test_runner_process_answers_job_by_job_and_fails_with_a_reason():
    echo = ("import sys\nfor line in sys.stdin:\n    k, _, _, n = line.split('\\t')\n    print('TRACE', k)\n"
            "    for r in range(int(n)): print('RESULT', k, r, flush=True)")
    with _python_runner(echo) as runner:  # the same process answers job after job; other lines skipped
        assert runner.play("a\tp\t9\t2", 2, 10) == ["RESULT a 0\n", "RESULT a 1\n"]
        assert runner.play("b\tp\t9\t1", 1, 10) == ["RESULT b 0\n"]
    with _python_runner("import sys; sys.stderr.write('java.lang.OutOfMemoryError'); sys.exit(1)") as runner:
        with pytest.raises(astar.AstarRunError, match="ran out of its -Xmx512m Java heap"):
            runner.play("a\tp\t9\t1", 1, 10)
    with _python_runner("import sys; sys.stdin.readline(); sys.stderr.write('bad level'); sys.exit(3)") as runner:
        with pytest.raises(astar.AstarRunError, match=r"exited with code 3 \(bad level\)"):
            runner.play("a\tp\t9\t1", 1, 10)
    with _python_runner("import sys, time; sys.stdin.readline(); time.sleep(60)") as runner:
        with pytest.raises(astar.AstarRunError, match="ran past 1 s"):
            runner.play("a\tp\t9\t1", 1, 1)


def test_quality_table_reuses_cached_plays_only_under_a_node_budget(fake_runner):
    from rlcreate.levels.quality import astar_interleaved

    a, b = flat(20), flat(24)
    astar.run_astar([a])  # e.g. eval's judge played it before
    assert [c["levels"] for c in fake_runner] == [[astar.level_to_text(astar.with_entry(a))]]
    astar_interleaved({"x": [a], "y": [b]}, runs=1)  # only b is new: a play repeats under a node budget
    assert len(fake_runner) == 2 and fake_runner[1]["levels"] == [astar.level_to_text(astar.with_entry(b))]
    astar_interleaved({"x": [a], "y": [b]}, runs=1, budget_nodes=None, budget_ms=40)  # wall clock: all afresh
    assert sum(len(c["levels"]) for c in fake_runner[2:]) == 2


# ----------------------------------------------------------------------------------------------
# real plays (fast runner)

@pytest.mark.slow
@pytest.mark.java
@needs_javac
def test_real_plays_flat_won_wall_lost_gap_start_fixed_and_repeatable(java_cache, tmp_path):
    wall = flat(40)
    wall[:, 20] = X  # a wall of height 14: nothing gets past it
    gap_start = flat(40)
    gap_start[HEIGHT - 1, :7] = 0  # cut over a gap: the engine spawns Mario above it (falling from
    # the top, the agent drifts up to 6 columns right: a 7-column gap kills it at the spawn)
    busy = flat(48)
    busy[HEIGHT - 1, 14:17] = 0
    busy[HEIGHT - 2, [10, 25, 33]] = E
    busy[9:HEIGHT - 1, 28] = X
    flat_s, wall_s, gap_s, busy_s = astar.run_astar([flat(40), wall, gap_start, busy], runs=2, workers=1, cache=False,
                                                    runner="fast")
    assert flat_s.wins == 2
    assert wall_s.wins == 0 and wall_s.mean_completion < 21 / 40
    assert gap_s.wins == 2  # with the entry platform Mario walks in from the left
    (gap_plain,) = astar.run_astar([gap_start], runs=1, workers=1, cache=False, start_pad=0, runner="fast")
    assert gap_plain.wins == 0 and gap_plain.results[0].status == "LOSE"  # fell at the spawn
    a, b = busy_s.results  # a node budget makes the play a pure function of the level
    assert (a.status, a.completion, a.jumps, a.kills) == (b.status, b.completion, b.jumps, b.kills)

    # stuck at a wall: the stall cut ends the play as TIME_OUT with game time left; the timer, with none
    long_wall = flat(64)
    long_wall[:, 20] = X
    level = tmp_path / "wall.txt"
    level.write_text(astar.level_to_text(astar.with_entry(long_wall)))
    cmd = ["java", "-cp", f"{astar.jar_path()}:{astar._compiled_runner(shutil.which('javac'))}", "FastAstar",
           "--budget-nodes", "500"]
    ended = {}
    for stall in (None, 100):
        with astar._open_runner(cmd + (["--stall-ticks", str(stall)] if stall else [])) as runner:
            (line,) = runner.play(f"k\t{level}\t{astar.default_timer(64)}\t1", 1, 300)
        ended[stall] = line.split("\t")[3], float(line.split("\t")[4]), int(line.split("\t")[9])  # status, completion, ms left
    pad = astar.START_PAD  # the engine reads completion over the padded level: the wall is its column 23
    assert ended[None][0] == ended[100][0] == "TIME_OUT" and max(ended[None][1], ended[100][1]) < (21 + pad) / (64 + pad)
    assert ended[None][2] <= 0 < ended[100][2]

"""Hostile inputs through the real command line: exit code, error lines, tracebacks, peak memory.

Trains one tiny run, then runs each hostile case (bombs, deep nesting, crafted headers, bad state
files, links, bad names, a second writer, a too-wide level for the A* agent) as its own
``python -m rlcreate.cli`` process and records its exit code, how many ``error:`` lines it printed,
whether a traceback appeared, its peak resident memory (``ru_maxrss`` of that process), and whether
a file outside the run folder that a planted link points to is untouched. Two ordinary commands
(``check`` of a shipped recipe, ``generate`` from the tiny run) give the memory baseline of a
command that does its normal work.

    OMP_NUM_THREADS=1 python scripts/bench_hostile.py          # -> benchmarks/hostile_inputs.json
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from rlcreate.benchmark import environment, finish, write_json
from rlcreate.scripting import parse_config

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    out: str = "benchmarks/hostile_inputs.json"
    """Where the JSON goes."""
    timeout_s: int = 600
    """Seconds per case; a case that runs past it is recorded as a hang."""
    only: str = ""
    """Run only the cases whose label contains this text (all when empty; the smoke test runs a few)."""


TINY = {"name": "tiny", "seed": 0, "env": {"id": "rlcreate/MarioLatent-v0", "kwargs": {"n_segments": 2}},
        "rewards": {"playability": {"weight": 1.0},
                    "novelty": {"reward": "level_novelty", "weight": 1.0, "transform": "normalize"}},
        "trainer": {"algo": "ppo", "total_timesteps": 256, "n_envs": 4, "checkpoints": 2, "samples": 2,
                    "hyper": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}}}


def run_cli(argv: list, timeout: int) -> dict:
    """One CLI process: exit code, error lines, traceback, peak RSS (MB, ``wait4`` of that process)."""
    import time

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rlcreate.cli", *map(str, argv)], stdout=out, stderr=err)
        hang = False
        while True:  # reap it ourselves: wait4 returns this process's own resource usage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                hang = True
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    errors = [line for line in text.splitlines() if "error:" in line]  # option errors read "rlcreate X: error:"
    return {"exit": proc.returncode, "error_lines": len(errors), "traceback": "Traceback" in text, "hang": hang,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1),
            "message": (errors[0] if errors else (text.strip().splitlines() or [""])[-1])[:240]}


def _bomb() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for i in range(8):
        text += f"n{i}: &n{i} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = f"n{i}"
    return text


def _npy_header(shape: tuple) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _tree_npz(path: Path, bomb: bool) -> None:
    import io

    tree = {"format": "rlcreate-checkpoint/1", "tree": {"t": "dict", "v": {"x": {"t": "array", "k": "a0"}}}}
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(tree)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("__tree__.npy", buf.getvalue())
        if bomb:  # 1.2 GB of zeros, a few MB on disk
            n = 150 * 2**20
            with zf.open("a0.npy", "w", force_zip64=True) as f:
                f.write(_npy_header((n,)))
                zeros = bytes(2**24)
                for _ in range(n * 8 // len(zeros)):
                    f.write(zeros)
        else:  # a header declaring 80 GB over 64 bytes of data
            zf.writestr("a0.npy", _npy_header((10**10,)) + b"\0" * 64)


def main(cfg: Config) -> dict:
    env = environment(settings=vars(cfg))
    work = Path(tempfile.mkdtemp(prefix="rlcreate-hostile-"))
    recipe = work / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    train = run_cli(["train", recipe, "--out", work / "runs", "--quiet"], cfg.timeout_s)
    assert train["exit"] == 0, train
    good = work / "runs" / "tiny"
    victim = work / "outside.txt"
    victim.write_text("precious")

    def copy(name: str) -> Path:
        dst = work / name
        shutil.copytree(good, dst)
        return dst

    def recipe_with(name: str, text: str) -> Path:
        path = work / f"{name}.yaml"
        path.write_text(text)
        return path

    def patched_json(name: str, file: str, edit) -> Path:
        run = copy(name)
        shutil.rmtree(run / "checkpoints")
        path = run / "model" / file
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
        return run

    cases: dict[str, list] = {}
    cases["normal: check mario_latent.yaml"] = ["check", ROOT / "rlcreate" / "recipes" / "mario_latent.yaml"]
    cases["normal: generate --n 2"] = ["generate", copy("base"), "--n", "2"]
    cases["YAML alias bomb (1 KB) in name"] = ["check", recipe_with("bomb", _bomb() + "name: *n7\n")]
    cases["YAML nested 1,000 deep"] = ["check", recipe_with("deep", "env: " + "[" * 1000 + "]" * 1000 + "\n")]
    cases["YAML of 10 MB"] = ["check", recipe_with("big", "name: x\ndescription: " + "a" * 10 * 2**20 + "\n")]
    cases["YAML duplicate keys"] = ["check", recipe_with("dup", yaml.safe_dump(TINY) + "seed: 3\n")]
    for label, change in {"targets [-2, 1]": {"targets": {"enemies": [-2, 1]}},
                          "targets [0, 1e308]": {"targets": {"enemies": [0, 1e308]}},
                          "weight: {}": {"rewards": {"playability": {"weight": {}}}},
                          "normalize: {clip: big}": {"rewards": {"n": {"reward": "level_novelty",
                                                                       "transform": {"normalize": {"clip": "big"}}}}},
                          "device: nonsense": {"trainer": {**TINY["trainer"], "device": "nonsense"}},
                          "device: cuda (CPU-only machine)": {"trainer": {**TINY["trainer"], "device": "cuda"}},
                          "net_arch [65536, 65536]": {"trainer": {**TINY["trainer"], "hyper": {
                              "policy_kwargs": {"net_arch": [65536, 65536]}}}}}.items():
        cases[f"recipe {label}"] = ["check", recipe_with(f"recipe{len(cases)}", yaml.safe_dump({**TINY, **change}))]
    cases["train --name of 300 characters"] = ["train", recipe, "--out", work / "runs", "--name", "x" * 300]
    cases["train --out /dev/null"] = ["train", recipe, "--out", "/dev/null"]
    bomb_run = copy("zipbomb")
    _tree_npz(bomb_run / "model" / "reward_state.npz", bomb=True)
    cases[f"npz zip bomb ({(bomb_run / 'model' / 'reward_state.npz').stat().st_size // 2**20} MB, 1.2 GB declared)"] = [
        "generate", bomb_run, "--n", "2"]
    header_run = copy("npyheader")
    _tree_npz(header_run / "model" / "reward_state.npz", bomb=False)
    cases["npy header declaring 80 GB"] = ["generate", header_run, "--n", "2"]
    st_run = copy("stheader")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, 4 * 2**30]}}).encode()
    (st_run / "model" / "policy.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    cases["safetensors header declaring 4 GB"] = ["generate", st_run, "--n", "2"]
    cases["policy.json net_arch [8192, 8192]"] = ["generate", patched_json(
        "arch", "policy.json", lambda d: d["hyper"].update(policy_kwargs={"net_arch": [8192, 8192]})), "--n", "2"]
    cases["policy.json net_arch [65536] * 4"] = ["generate", patched_json(
        "arch4", "policy.json", lambda d: d["hyper"].update(policy_kwargs={"net_arch": [65536] * 4})), "--n", "2"]
    cases["policy.json Discrete(1e12) actions"] = ["generate", patched_json(
        "disc", "policy.json", lambda d: d.update(action_space={"type": "Discrete", "n": 10**12})), "--n", "2"]
    deep = copy("deepjson")
    (deep / "model" / "policy.json").write_text("[" * 200_000 + "]" * 200_000)
    cases["policy.json nested 200,000 deep"] = ["generate", deep, "--n", "2"]
    cases["trainer_state num_timesteps 'abc'"] = ["train", patched_json(
        "abc", "trainer_state.json", lambda d: d.update(num_timesteps="abc")), "--resume", "--quiet"]
    cases["trainer_state num_timesteps -100"] = ["train", patched_json(
        "neg", "trainer_state.json", lambda d: d.update(num_timesteps=-100)), "--resume", "--quiet"]
    cases["trainer_state pos 1e30"] = ["train", patched_json(
        "pos", "trainer_state.json", lambda d: d["rng"]["numpy"].update(pos=1e30)), "--resume", "--quiet"]
    nan_run = copy("nan")
    from safetensors.torch import load_file, save_file

    path = nan_run / "model" / "policy.safetensors"
    save_file({k: v * float("nan") for k, v in load_file(str(path)).items()}, str(path))
    cases["all-NaN weights"] = ["generate", nan_run, "--n", "2"]
    targets_run = copy("targets")
    cases["generate --targets enemies=inf"] = ["generate", targets_run, "--n", "2", "--targets", "enemies=inf"]
    links = {}
    for name, rel in (("link_resume", "samples/level_000.txt"), ("link_generate", "generated/level_000.txt"),
                      ("link_eval", "metrics.json"), ("link_report", "samples/level_000.png")):
        run = copy(name)
        (run / rel).parent.mkdir(exist_ok=True)
        if (run / rel).exists():
            (run / rel).unlink()
        (run / rel).symlink_to(victim)
        links[name] = run
    cases["link: train --resume through samples/level_000.txt"] = ["train", links["link_resume"], "--resume", "--quiet"]
    cases["link: generate through generated/level_000.txt"] = ["generate", links["link_generate"], "--n", "2"]
    cases["link: eval through metrics.json"] = ["eval", links["link_eval"], "--no-audit", "--n", "2"]
    cases["link: report embedding samples/level_000.png"] = ["report", links["link_report"], "--out", work / "rep"]
    (work / "empty").mkdir()
    cases["report on an empty folder"] = ["report", work / "empty", "--out", work / "rep2"]
    cases["report on /"] = ["report", "/", "--out", work / "rep3"]
    cases["report --out <file>"] = ["report", good, "--out", victim]
    cases["baseline --name ../../x"] = ["baseline", recipe, "--method", "random", "--name", "../../x", "--out", work]
    wide = work / "wide.txt"
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.tiles import level_to_text

    wins = training_windows(128)
    wide.write_text(level_to_text(np.concatenate([wins[i % len(wins)] for i in range(79)], axis=1)[:, :10_000]))
    cases["play a 10,000-column level (A* agent)"] = ["play", wide]

    results = {}
    cases = {k: v for k, v in cases.items() if cfg.only in k}
    for label, argv in cases.items():
        results[label] = run_cli(argv, cfg.timeout_s)
        print(f"{label:58s} exit {results[label]['exit']} rss {results[label]['peak_rss_mb']:7.1f} MB  "
              f"{results[label]['message'][:90]}", flush=True)

    # generate --n 4 then --n 2 into one folder: the second replaces the first as a whole
    regen = copy("regen")
    run_cli(["generate", regen, "--n", "4"], cfg.timeout_s)
    again = run_cli(["generate", regen, "--n", "2"], cfg.timeout_s)
    again["levels_left"] = len(list((regen / "generated").glob("level_*.txt")))
    results["normal: generate --n 2 after --n 4 (levels left)"] = again

    # a second writer while the first holds the lock
    from rlcreate.runbox import run_lock

    locked = copy("locked")
    with run_lock(locked, "bench"):
        results["second writer (train --resume while locked)"] = run_cli(["train", locked, "--resume", "--quiet"],
                                                                        cfg.timeout_s)

    hostile = {k: v for k, v in results.items() if not k.startswith("normal")}
    summary = {"cases": len(hostile),
               "tracebacks": sum(v["traceback"] for v in hostile.values()),
               "hangs": sum(v["hang"] for v in hostile.values()),
               "exit_0": sorted(k for k, v in hostile.items() if v["exit"] == 0),
               "not_one_error_line": sorted(k for k, v in hostile.items()
                                            if v["exit"] != 0 and v["error_lines"] != 1),
               "outside_file_intact": victim.read_text() == "precious",
               "max_hostile_rss_mb": max(v["peak_rss_mb"] for v in hostile.values()),
               "normal_rss_mb": {k: v["peak_rss_mb"] for k, v in results.items() if k.startswith("normal")}}
    shutil.rmtree(work, ignore_errors=True)
    return {**finish(env), "summary": summary, "results": results}


if __name__ == "__main__":
    cfg = parse_config(Config)
    result = main(cfg)
    write_json(ROOT / cfg.out, result)
    print(json.dumps(result["summary"], indent=2))

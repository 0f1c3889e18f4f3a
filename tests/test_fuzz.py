"""Bounded, seeded fuzzing of rlcreate's inputs through the CLI entry point.

Every case runs ``rlcreate.cli.main([...])`` in-process under a per-case alarm. A case passes when
the command exits 0, or exits 2 with exactly one ``error:`` line (argparse usage errors included);
a traceback (any other exception) or a hang fails the test, and the counts are in the message.

* recipes: 300 mutations of the shipped level recipes (values swapped for wrong types, NaN,
  huge and negative numbers, ``os:system``; keys deleted, misspelt, added; YAML text broken);
* recipes ``check`` accepts must train (no "wrong successes"): a sample of them is trained;
* level files: 200 mutations of a real corpus window (tiles, rows, widths, BOM, CRLF, binary,
  20,000 columns, a 10 MB file, a folder) through ``render``, and the fast solver;
* CLI options: every typed option with out-of-range / non-numeric values;
* run folders: failed commands against a real run folder leave every file byte-identical.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import random
import signal
import traceback
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlcreate.cli import main

RECIPES = Path(__file__).resolve().parents[1] / "rlcreate" / "recipes"
POOL = [None, -1, 0, 1, 2**40, -0.5, 1e30, float("nan"), float("inf"), "abc", "", [], {}, True, [1, 2],
        {"a": 1}, "os:system", 3.5, "rlcreate/MarioLatent-v0", 2**32, "../../etc"]
CASE_LIMIT_S = 120  # per case; far above the slowest clean case (a check builds the env: ~1 s)


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang()


def run_cli(argv: list[str], limit: int = CASE_LIMIT_S) -> tuple[str, str]:
    """``(kind, detail)``: kind is ok | error (exit 2, one error line) | traceback | hang | bad."""
    err, out = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse
                code = exc.code
    except _Hang:
        return "hang", " ".join(map(str, argv))
    except BaseException:  # noqa: BLE001 - every escape is a finding
        return "traceback", traceback.format_exc()[-2000:]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    errors = [line for line in err.getvalue().splitlines() if "error:" in line]
    if code == 0:
        return "ok", ""
    if code == 2 and len(errors) == 1:
        return "error", errors[0]
    return "bad", f"exit {code}: {err.getvalue()[-1000:]}"


def _assert_clean(results: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, _ in results:
        counts[kind] = counts.get(kind, 0) + 1
    failures = [detail for kind, detail in results if kind not in ("ok", "error")]
    assert not failures, f"{counts}; failures:\n" + "\n---\n".join(f[-600:] for f in failures)
    return counts


# ---------------------------------------------------------------------------------- recipes

def _paths(tree, prefix=()):
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


def mutate_recipe(rng: random.Random, doc: dict):
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return copy.deepcopy(rng.choice(POOL))
        path = rng.choice(paths)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = rng.random()
        if op < 0.6:
            parent[path[-1]] = copy.deepcopy(rng.choice(POOL))
        elif op < 0.75 and isinstance(parent, dict):
            del parent[path[-1]]
        elif op < 0.9 and isinstance(parent, dict) and isinstance(path[-1], str) and len(path[-1]) > 1:
            parent[path[-1][:-1]] = parent.pop(path[-1])  # misspelt key
        elif isinstance(parent, dict):
            parent["zz_unknown"] = copy.deepcopy(rng.choice(POOL))
    return doc


def _recipe_text(rng: random.Random, doc) -> str:
    text = yaml.safe_dump(doc)
    if rng.random() < 0.15:  # broken YAML / odd characters
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(["\t", "{", ":", "\ufeff", "\x00", "- [", "\n  - :"]) + text[cut:]
    return text


def _mutated_recipes(tmp_path: Path, n: int, seed: int) -> list[tuple[Path, object]]:
    bases = [yaml.safe_load((RECIPES / name).read_text()) for name in ("mario_latent.yaml", "mario_tokens.yaml")]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc = mutate_recipe(rng, bases[0] if rng.random() < 0.7 else bases[1])
        path = tmp_path / f"r{i:03d}.yaml"
        path.write_text(_recipe_text(rng, doc), encoding="utf-8")
        out.append((path, doc))
    return out


@pytest.mark.slow
def test_recipe_fuzz_check(tmp_path):
    cases = _mutated_recipes(tmp_path, 300, seed=0)
    counts = _assert_clean([run_cli(["check", path]) for path, _ in cases])
    assert counts.get("error", 0) > 200  # the mutations do break recipes (the fuzzer is not idle)


def _small_enough(doc) -> bool:
    """Train only mutants whose first rollout is small (a mutant may ask for 2048 steps x 16 envs)."""
    trainer = doc.get("trainer") if isinstance(doc, dict) else None
    if not isinstance(trainer, dict):
        return False
    hyper = trainer.get("hyper") if isinstance(trainer.get("hyper"), dict) else {}
    n_envs, n_steps = trainer.get("n_envs", 16), hyper.get("n_steps", 2048)
    return isinstance(n_envs, int) and isinstance(n_steps, int) and n_envs * n_steps <= 2048


@pytest.mark.slow
def test_recipes_that_check_accepts_train(tmp_path):
    """No wrong successes: a recipe ``check`` accepts trains (64 steps, at most 24 mutants)."""
    accepted = [(p, d) for p, d in _mutated_recipes(tmp_path, 300, seed=1)
                if _small_enough(d) and run_cli(["check", p])[0] == "ok"][:24]
    assert len(accepted) >= 8
    results = [run_cli(["train", p, "--timesteps", 64, "--out", tmp_path / "runs", "--name", p.stem, "--quiet"])
               for p, _ in accepted]
    wrong = [detail for kind, detail in results if kind != "ok"]
    assert not wrong, f"{len(wrong)} of {len(accepted)} checked recipes failed to train; first: {wrong[0]}"


# ---------------------------------------------------------------------------------- level files

def _base_level() -> str:
    from rlcreate.levels import corpus
    from rlcreate.levels.tiles import level_to_text

    return level_to_text(corpus.held_out_blocks()[0].grid()[:, :48])


def mutate_level(rng: random.Random, text: str) -> bytes:
    lines = text.rstrip("\n").split("\n")
    op = rng.randrange(12)
    if op == 0:  # random tile changes, sometimes to characters that are not tiles
        chars = list(text)
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(len(chars))
            if chars[i] != "\n":
                chars[i] = rng.choice("-XS?QoE<>[]Bbx#é\t ")
        return "".join(chars).encode("utf-8")
    if op == 1:
        del lines[rng.randrange(len(lines))]
    elif op == 2:
        lines.insert(rng.randrange(len(lines)), rng.choice(["", "-" * len(lines[0]), "X"]))
    elif op == 3:
        i = rng.randrange(len(lines))
        lines[i] = lines[i][: rng.randrange(len(lines[i]))]
    elif op == 4:
        return ("\ufeff" + text).encode("utf-8")
    elif op == 5:
        return text.replace("\n", "\r\n").encode()
    elif op == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
    elif op == 7:
        return text.encode()[: rng.randrange(len(text))]
    elif op == 8:
        return b""
    elif op == 9:
        return "\n".join(line * rng.choice([2, 50, 420]) for line in lines).encode()  # up to 20,160 columns
    elif op == 10:
        return text.encode("utf-16")
    else:
        return text.encode()  # unchanged: must succeed
    return "\n".join(lines).encode()


def test_level_file_fuzz(tmp_path):
    from rlcreate.levels.solver import solve
    from rlcreate.levels.tiles import LevelFormatError, read_level

    rng = random.Random(0)
    base = _base_level()
    results, solved = [], 0
    for i in range(200):
        path = tmp_path / f"l{i:03d}.txt"
        path.write_bytes(mutate_level(rng, base))
        results.append(run_cli(["render", path, "-o", tmp_path / f"l{i:03d}.png"]))
        try:
            grid = read_level(path)
        except LevelFormatError:
            continue
        solve(grid)
        solved += 1
    big = tmp_path / "big.txt"
    big.write_bytes((b"-" * 750_000 + b"\n") * 14)  # a 10 MB level file
    results.append(run_cli(["render", big, "-o", tmp_path / "big.png"]))
    results.append(run_cli(["play", big]))
    results.append(run_cli(["render", tmp_path, "-o", tmp_path / "dir.png"]))  # a folder as the level
    results.append(run_cli(["play", tmp_path]))
    ok = tmp_path / "ok.txt"
    ok.write_text(base)
    for target in (tmp_path, tmp_path / "no" / "such" / "x.png", tmp_path / "x.unknown"):
        results.append(run_cli(["render", ok, "-o", target]))
    counts = _assert_clean(results)
    assert counts.get("ok", 0) >= 15 and counts.get("error", 0) >= 100 and solved >= 15, counts
    assert "too large" in run_cli(["render", big, "-o", tmp_path / "big.png"])[1]


def test_bom_and_crlf_levels_read_like_plain_ones(tmp_path):
    from rlcreate.levels.tiles import read_level

    base = _base_level()
    plain, bom, crlf = (tmp_path / n for n in ("a.txt", "b.txt", "c.txt"))
    plain.write_text(base)
    bom.write_bytes(("\ufeff" + base).encode("utf-8"))
    crlf.write_bytes(base.replace("\n", "\r\n").encode())
    assert np.array_equal(read_level(plain), read_level(bom)) and np.array_equal(read_level(plain), read_level(crlf))


def test_astar_timer_is_bounded_and_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    import json

    from rlcreate.levels import astar

    assert astar.default_timer(100) == 15 and astar.default_timer(20_000) == astar.MAX_TIMER
    monkeypatch.setenv("RLCREATE_CACHE", str(tmp_path))
    for garbage in (b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"k": [{"status": 1}]}'):
        (tmp_path / "astar_results.json").write_bytes(garbage)
        assert astar._load_cache() == {}
    good = {"status": "WIN", "completion": 1.0, "jumps": 1, "kills": 0, "coins": 0, "lives": 1, "runtime_s": 0.5}
    astar._save_cache({"k": [good]})
    assert json.loads((tmp_path / "astar_results.json").read_text()) == {"k": [good]}
    (tmp_path / "astar_results.json").unlink()
    (tmp_path / "astar_results.json").mkdir()  # a folder in the cache's place: ignored, not fatal
    assert astar._load_cache() == {}
    astar._save_cache({"k": [good]})


# ---------------------------------------------------------------------------------- CLI options

BAD_INTS = ["0", "-5", "nan", "inf", "1e99", "abc", "", "99999999999999999999999", "1.5"]


def test_cli_option_fuzz(tmp_path):
    recipe = RECIPES / "mario_latent.yaml"
    run = tmp_path / "no-run"
    options = [
        (["train", recipe, "--out", tmp_path], "--timesteps", BAD_INTS),
        (["train", recipe, "--out", tmp_path], "--name", ["", "../x", "a/b", ".hidden", "..", "x y"]),
        (["demo", "--out", tmp_path / "demo"], "--seed", ["-1", str(2**31), "abc", "nan", ""]),
        (["demo", "--out", tmp_path / "demo"], "--minutes", ["3"]),  # removed: the budget is a step count
        (["demo", "--out", tmp_path / "demo"], "--timesteps", BAD_INTS),
        (["generate", run], "--n", BAD_INTS),
        (["generate", run], "--seed", ["-1", str(2**32), "abc", "nan"]),
        (["calibrate", run], "--levels", BAD_INTS),
        (["calibrate", run], "--rounds", BAD_INTS),
        (["play", recipe], "--runs", BAD_INTS),
        (["eval", run], "--n", BAD_INTS),
        (["eval", run], "--astar-runs", BAD_INTS),
        (["eval", run], "--audit-levels", BAD_INTS),
        (["baseline", recipe, "--out", tmp_path], "--budget", BAD_INTS),
        (["baseline", recipe, "--out", tmp_path], "--batch", BAD_INTS),
        (["report", run, "--out", tmp_path / "rep"], "--gallery", ["-1", "nan", "abc"]),
        (["finetune", recipe, "--out", tmp_path], "--steps", BAD_INTS),
    ]
    results = [run_cli(head + [flag, value]) for head, flag, value_list in options for value in value_list]
    results += [run_cli(argv) for argv in (["train"], ["nosuchcommand"], ["generate", run, "--targets", "=,="],
                                           ["generate", run, "--targets", "enemies"], ["check", tmp_path],
                                           ["check", tmp_path / "missing.yaml"], ["eval", recipe],
                                           ["report", tmp_path / "missing"])]
    counts = _assert_clean(results)
    assert counts.get("ok", 0) == 0, counts  # every one of these is a mistake: none may start work


# ---------------------------------------------------------------------------------- run folders

def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_commands_never_damage_a_run(tmp_path):
    recipe = {"name": "keep", "seed": 0, "env": {"id": "rlcreate/MarioLatent-v0", "kwargs": {"n_segments": 2}},
              "rewards": {"playability": {"weight": 1.0}},
              "trainer": {"algo": "ppo", "total_timesteps": 128, "n_envs": 4, "checkpoints": 1, "samples": 2,
                          "hyper": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}}}
    path = tmp_path / "keep.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "runs"
    assert run_cli(["train", path, "--out", out, "--quiet"])[0] == "ok"
    run = out / "keep"
    before = _hashes(run)
    assert "config.yaml" in before and "model/policy.safetensors" in before

    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**recipe, "trainer": {**recipe["trainer"], "hyper": {"n_stepz": 3}}}))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**recipe, "seed": 1}))
    rng = random.Random(0)
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text(_recipe_text(rng, mutate_recipe(rng, recipe)) + "\n: [")
    failing = [
        ["train", path, "--out", out],                       # the folder holds a run
        ["train", broken, "--out", out, "--name", "keep", "--overwrite"],
        ["train", garbage, "--out", out, "--name", "keep", "--overwrite"],
        ["train", other, "--out", out, "--name", "keep", "--resume"],   # a different recipe
        ["train", run, "--resume", "--overwrite"],
        ["train", run],
        ["generate", run, "--n", "0"],
        ["generate", run, "--targets", "dragons=2"],
        ["calibrate", run],                                  # not a token run: no offsets to fit
        ["eval", run, "--judges", "nonsense"],
        ["eval", run, "--n", "-1"],
        ["render", run / "config.yaml", "-o", run / "config.yaml"],
        ["play", run / "model" / "policy.safetensors"],
        ["check", run / "model" / "policy.json"],
    ]
    results = [run_cli(argv) for argv in failing]
    kinds = [kind for kind, _ in results]
    assert kinds == ["error"] * len(failing), list(zip(kinds, [r[1][:200] for r in results]))
    assert _hashes(run) == before


def test_corrupt_run_folders_give_one_error_line(tmp_path):
    """Seeded corruptions of a real run folder (truncated or garbage files, broken YAML, missing
    parts) through generate / eval / train --resume: exit 2 with one error line, or exit 0 when
    the damage is in a part the command falls back from (an older checkpoint)."""
    import shutil

    recipe = {"name": "c", "seed": 0, "env": {"id": "rlcreate/MarioLatent-v0", "kwargs": {"n_segments": 2}},
              "rewards": {"playability": {"weight": 1.0},
                          "novelty": {"reward": "level_novelty", "transform": "normalize"}},
              "trainer": {"algo": "ppo", "total_timesteps": 256, "n_envs": 4, "checkpoints": 2, "samples": 2,
                          "hyper": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert run_cli(["train", path, "--out", tmp_path / "runs", "--quiet"])[0] == "ok"
    good = tmp_path / "runs" / "c"
    files = sorted(str(p.relative_to(good)) for p in good.rglob("*")
                   if p.is_file() and p.parts[-2] in ("model", "c") and p.suffix in (".json", ".npz", ".safetensors", ".yaml"))
    rng = random.Random(0)
    results = []
    for i, name in enumerate(files * 2):
        run = tmp_path / f"bad{i}"
        shutil.copytree(good, run)
        target = run / name
        data = target.read_bytes()
        how = rng.choice(["truncate", "garbage", "empty", "flip"])
        if how == "truncate":
            target.write_bytes(data[: rng.randrange(max(len(data), 1))])
        elif how == "garbage":
            target.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
        elif how == "empty":
            target.write_bytes(b"")
        else:
            b = bytearray(data)
            for _ in range(8):
                b[rng.randrange(len(b))] = rng.randrange(256)
            target.write_bytes(bytes(b))
        results.append(run_cli(["generate", run, "--n", 2, "--out", tmp_path / f"gen{i}"]))
    (tmp_path / "runs" / "c" / "config.yaml").write_text("name: c\nenv: {id: [\n")
    results.append(run_cli(["generate", good]))
    results.append(run_cli(["train", good, "--resume"]))
    counts = _assert_clean(results)
    assert counts.get("error", 0) >= len(files), counts


@pytest.mark.parametrize("hyper,n_envs,match", [
    ({"n_steps": 2**40}, 16, "n_steps"), ({"batch_size": 2**40}, 16, "batch_size"),
    ({"n_epochs": 2**40}, 16, "n_epochs"), ({"n_steps": 65536}, 4096, "rollout buffer"),
    ({"learning_rate": -0.1}, 16, "learning_rate"), ({"gamma": 1.5}, 16, "gamma"),
    ({"n_stepz": 3}, 16, "Did you mean 'n_steps'"), ({"policy": "os:system"}, 16, "not a policy"),
    ({"policy_kwargs": {"activation_fn": "os:system"}}, 16, "activation_fn"),
    ({"rollout_buffer_class": "os:system"}, 16, "names code"),
    ({"learning_rate": {"start": 0.001, "stop": 0.0}}, 16, "annealed linearly"),
    ({"learning_rate": {"start": 0.001, "end": -1.0}}, 16, "learning_rate.end"),
    ({"learning_rate": {"start": 0.0, "end": 0.0}}, 16, "learning_rate.start"),
])
def test_check_refuses_bad_hyper_parameters(tmp_path, hyper, n_envs, match):
    """Hyper-parameters are checked against the algorithm's signature and ranges by ``check``,
    before anything is allocated (2**40 steps per rollout was a MemoryError traceback)."""
    doc = yaml.safe_load((RECIPES / "mario_latent.yaml").read_text())
    doc["trainer"]["hyper"] = {**doc["trainer"]["hyper"], **hyper}
    doc["trainer"]["n_envs"] = n_envs
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    kind, detail = run_cli(["check", path])
    assert kind == "error" and match in detail, detail


@pytest.mark.parametrize("recipe,key,value", [("mario_latent.yaml", "n_segments", 2**40),
                                              ("mario_tokens.yaml", "n_columns", 2**40),
                                              ("mario_tokens.yaml", "k", 2**40)])
def test_check_refuses_huge_env_sizes(tmp_path, recipe, key, value):
    """A huge size in env.kwargs is refused by name (n_segments: 2**40 was a MemoryError traceback)."""
    doc = yaml.safe_load((RECIPES / recipe).read_text())
    doc["env"]["kwargs"][key] = value
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    kind, detail = run_cli(["check", path])
    assert kind == "error" and key in detail, detail


def test_check_refuses_unknown_target_names(tmp_path):
    """A misspelt control target passed check and crashed training at the first episode end."""
    doc = yaml.safe_load((RECIPES / "mario_latent.yaml").read_text())
    doc["targets"]["enemie"] = doc["targets"].pop("enemies")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    kind, detail = run_cli(["check", path])
    assert kind == "error" and "targets.enemie" in detail and "Did you mean 'enemies'" in detail, detail


def test_prompt_file_fuzz(tmp_path):
    """Mutated prompt files through the recipe's prompt resolver (what check and train read):
    a list of non-empty prompts or one user error, never another exception."""
    from rlcreate.errors import UserError
    from rlcreate.text.loading import MAX_PROMPT_FILE_BYTES
    from rlcreate.text.runs import resolve_prompts

    rng = random.Random(0)
    base = "Write a story about a lighthouse.\nDescribe a city at night.\nA poem about rain.\n"
    cases = [b"", b"\n\n  \n", ("\ufeff" + base).encode(), base.encode("latin-1") + b"caf\xe9\n",
             base.encode("utf-16"), b"\x00" * 50, base.replace("\n", "\r\n").encode(), b"x" * 100_000]
    for _ in range(100):
        data = bytearray(base.encode())
        for _ in range(rng.randint(1, 10)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    outcomes = {"ok": 0, "error": 0}
    for i, data in enumerate(cases):
        path = tmp_path / f"p{i}.txt"
        path.write_bytes(data)
        try:
            prompts = resolve_prompts(str(path), "env.kwargs.prompts")
        except UserError:
            outcomes["error"] += 1
            continue
        assert prompts and all(p.strip() == p and p for p in prompts)
        outcomes["ok"] += 1
    assert resolve_prompts(str(tmp_path / "p2.txt"), "p")[0] == "Write a story about a lighthouse."  # BOM dropped
    with pytest.raises(UserError):
        resolve_prompts(str(tmp_path), "env.kwargs.prompts")  # a folder
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_PROMPT_FILE_BYTES + 1)
    with pytest.raises(UserError, match="read at most"):
        resolve_prompts(str(big), "env.kwargs.prompts")
    assert outcomes["ok"] >= 10 and outcomes["error"] >= 10, outcomes

"""Hostile files cannot exhaust memory or recursion: every case runs in a subprocess under a memory
cap (``RLIMIT_AS``), so a regression shows as a failed test, not as a killed CI machine.

Each case must end in a refusal (a :class:`rlcreate.errors.UserError` naming the limit); a
``MemoryError``, ``RecursionError``, any other traceback or a hang fails the test:

* YAML: a 1 KB "billion laughs" alias bomb, 1,000 and 100,000 levels of nesting, a 10 MB file,
  duplicate keys;
* JSON: 200,000 levels of nesting, NaN where numbers must be finite;
* ``.npz`` state: a zip bomb (1.2 GB of zeros in a ~5 MB file), a crafted ``.npy`` header
  declaring 80 GB, a pickled object member;
* safetensors: a header declaring a 4 GB tensor in a 100-byte file;
* ``policy.json``: layers of 8192 x 8192, ``Discrete(1e12)`` actions, ``[65536] * 4`` layers;
* a FIFO where a state file belongs (opening it would wait for a writer forever).
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

GB = 2**30


def capped(code: str, mem: int = GB, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python under an address-space cap of ``mem`` bytes."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], preexec_fn=limit, capture_output=True,
                          text=True, timeout=timeout, env=env)


def refused(call: str, mem: int = GB, setup: str = "") -> str:
    """Run ``call`` under the cap; it must raise a UserError. Returns the error message."""
    proc = capped(f"""
        import sys
        from rlcreate.errors import UserError
        {setup}
        try:
            {call}
        except UserError as exc:
            print("REFUSED:", exc)
            sys.exit(0)
        print("ACCEPTED")
        sys.exit(3)
    """, mem)
    assert proc.returncode == 0 and "REFUSED:" in proc.stdout, \
        (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    return proc.stdout.split("REFUSED:", 1)[1].strip()


def test_the_cap_is_real():
    """The harness itself: allocating 2 GB under the 1 GB cap fails (so the cases below would too)."""
    proc = capped("import numpy as np; np.ones(2**28)")
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


def _bomb(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for i in range(levels - 1):
        name = f"n{i}"
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text


@pytest.mark.parametrize("place", ["top", "name", "targets", "env.kwargs", "weight"])
def test_yaml_alias_bomb_in_a_recipe_is_refused(tmp_path, place):
    body = {"top": "{}", "name": "name: *n7\n", "targets": "targets: {enemies: *n7}\n",
            "env.kwargs": "env: {id: rlcreate/MarioLatent-v0, kwargs: {n_segments: *n7}}\n",
            "weight": "rewards: {playability: {weight: *n7}}\n"}[place]
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb() + (body if place != "top" else ""))
    assert path.stat().st_size < 2000
    msg = refused(f"load_recipe({str(path)!r})", setup="from rlcreate.recipe import load_recipe")
    assert "aliases" in msg and str(100_000) in msg


def test_small_alias_use_still_works(tmp_path):
    from rlcreate.safe_io import loads_yaml

    doc = loads_yaml("base: &b {weight: 1.0}\nrewards: {playability: *b, novelty: {<<: *b, reward: level_novelty}}\n")
    assert doc["rewards"]["novelty"] == {"weight": 1.0, "reward": "level_novelty"}


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_yaml_is_refused(tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nenv: " + "[" * depth + "]" * depth + "\n")
    msg = refused(f"load_recipe({str(path)!r})", setup="from rlcreate.recipe import load_recipe")
    assert "nested more than 64" in msg


def test_huge_yaml_is_refused_by_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\ndescription: " + "a" * (10 * 2**20) + "\n")
    assert "limit" in refused(f"load_recipe({str(path)!r})", setup="from rlcreate.recipe import load_recipe")


def test_duplicate_yaml_keys_are_refused(tmp_path):
    from rlcreate.recipe import load_recipe
    from rlcreate.safe_io import UnsafeInputError

    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nseed: 0\nseed: 1\nenv: rlcreate/MarioLatent-v0\n")
    with pytest.raises(UnsafeInputError, match="duplicate key 'seed' \\(line 3\\)"):
        load_recipe(path)


def test_deeply_nested_json_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    msg = refused(f"load_json({str(path)!r})", setup="from rlcreate.safe_io import load_json")
    assert "nested 200000 levels" in msg


def test_nonfinite_and_mistyped_state_numbers_are_refused():
    from rlcreate.safe_io import UnsafeInputError, loads_json, state_float, state_int

    with pytest.raises(UnsafeInputError, match="NaN"):
        loads_json('{"num_timesteps": NaN}', finite=True)
    for bad in ("abc", -5, 1.5, [], True, 10**30):
        with pytest.raises(UnsafeInputError, match="num_timesteps"):
            state_int(bad, "num_timesteps")
    with pytest.raises(UnsafeInputError, match="pos"):
        state_float(1e30, "pos", 0, 624)
    assert state_int(7, "n") == 7 and state_float("0.5", "g") == 0.5


# ------------------------------------------------------------------------------ arrays

def _npy_header(shape: tuple, dtype: str = "<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic string included


def _tree(path: Path, members: dict[str, bytes]) -> None:
    from rlcreate.train.checkpoint import FORMAT

    tree = {"format": FORMAT, "tree": {"t": "dict", "v": {"x": {"t": "array", "k": "a0"}}}}
    head = np.array(json.dumps(tree))
    import io

    buf = io.BytesIO()
    np.save(buf, head)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__tree__.npy", buf.getvalue())
        for name, data in members.items():
            zf.writestr(name, data)


def test_npz_with_a_crafted_header_is_refused_before_allocating(tmp_path):
    path = tmp_path / "reward_state.npz"
    _tree(path, {"a0.npy": _npy_header((10**10,)) + b"\0" * 64})  # declares 80 GB, holds 64 bytes
    msg = refused(f"load_tree({str(path)!r})", setup="from rlcreate.train.checkpoint import load_tree")
    assert "declares shape (10000000000,)" in msg


@pytest.mark.slow  # writing 1.2 GB through zlib takes ~20 s
def test_npz_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "reward_state.npz"
    n = 150 * 2**20  # float64 entries: 1.2 GB of zeros, about 5 MB compressed
    from rlcreate.train.checkpoint import FORMAT

    tree = {"format": FORMAT, "tree": {"t": "dict", "v": {"x": {"t": "array", "k": "a0"}}}}
    import io

    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(tree)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("__tree__.npy", buf.getvalue())
        with zf.open("a0.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((n,)))
            zeros = bytes(2**24)
            for _ in range(n * 8 // len(zeros)):
                f.write(zeros)
    assert path.stat().st_size < 10 * 2**20  # a hostile input of at most 10 MB
    msg = refused(f"load_tree({str(path)!r})", setup="from rlcreate.train.checkpoint import load_tree")
    assert "zip bomb" in msg


def test_safetensors_with_a_crafted_header_is_refused(tmp_path):
    path = tmp_path / "policy.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, 4 * 2**30]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    msg = refused(f"check_safetensors({str(path)!r})", setup="from rlcreate.safe_io import check_safetensors")
    assert "does not fit its data" in msg


def test_safetensors_shapes_must_match_the_description(tmp_path):
    from safetensors.numpy import save_file

    from rlcreate.safe_io import UnsafeInputError, check_safetensors

    path = tmp_path / "w.safetensors"
    save_file({"w": np.zeros((4, 3), np.float32)}, str(path))
    assert check_safetensors(path, {"w": (4, 3)}) == {"w": (4, 3)}
    with pytest.raises(UnsafeInputError, match="do not match the policy"):
        check_safetensors(path, {"w": (4, 4)})


@pytest.mark.slow  # one subprocess that imports torch + SB3 and builds a real run folder's policy
def test_policy_json_over_the_parameter_budget_is_refused(tmp_path):
    """Layers of 8192 x 8192, [65536] * 4 and Discrete(1e12) actions: refused before SB3 allocates."""
    proc = capped(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        from gymnasium import spaces
        from safetensors.torch import save_file
        from stable_baselines3 import PPO
        from rlcreate.errors import UserError
        from rlcreate.sb3.io import FORMAT, load_policy_folder, space_to_json

        folder = Path({str(tmp_path)!r}) / "model"
        folder.mkdir()
        obs, act = spaces.Box(-1, 1, (8,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
        good = PPO("MlpPolicy", None, _init_setup_model=False)
        save_file({{"x": __import__("torch").zeros(1)}}, str(folder / "policy.safetensors"))
        cases = {{"8192x8192": ({{"policy_kwargs": {{"net_arch": [8192, 8192]}}}}, act),
                 "65536x4": ({{"policy_kwargs": {{"net_arch": [65536] * 4}}}}, act),
                 "Discrete(1e12)": ({{}}, spaces.Discrete(10**12))}}
        for name, (hyper, action) in cases.items():
            desc = {{"format": FORMAT, "algo": "ppo", "hyper": hyper, "observation_space": space_to_json(obs),
                     "action_space": space_to_json(action), "num_timesteps": 0, "n_updates": 0}}
            (folder / "policy.json").write_text(json.dumps(desc))
            try:
                load_policy_folder(folder)
            except UserError as exc:
                print("REFUSED", name, exc)
                continue
            print("ACCEPTED", name)
            sys.exit(3)
    """, mem=3 * GB, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(lines) == 3, proc.stdout
    assert "MAX_POLICY_PARAMS" in lines[0] and "MAX_POLICY_PARAMS" in lines[1]
    assert "Discrete n" in lines[2]


@pytest.mark.parametrize("reader", ["check_safetensors", "check_npz", "load_json", "load_yaml"])
def test_a_fifo_in_place_of_a_state_file_is_refused_not_waited_on(tmp_path, reader):
    """A FIFO planted in a run folder (model/optimizer.safetensors) made `train --resume` wait forever:
    opening one for reading blocks until a writer comes. Every bounded reader refuses it at once."""
    fifo = tmp_path / "state"
    os.mkfifo(fifo)
    msg = refused(f"{reader}({str(fifo)!r})", setup=f"from rlcreate.safe_io import {reader}")
    assert "not a regular file" in msg


def test_a_level_too_wide_for_the_astar_agent_is_refused_up_front():
    from rlcreate.levels.astar import MAX_COLUMNS, AstarSettingsError, run_astar

    with pytest.raises(AstarSettingsError, match=f"limit of {MAX_COLUMNS} columns.*-Xmx"):
        run_astar([np.zeros((14, MAX_COLUMNS + 1), np.int64)], java="/nonexistent/java")

"""Ids in fresh processes: a spawned worker that never imported rlcreate resolves
``"rlcreate:rlcreate/MarioLatent-v0"`` (Gymnasium imports the module before the colon), for
``gym.make`` and ``gym.make_vec``. The plain id cannot resolve there: Gymnasium 1.x has no plugin
entry points, so nothing runs rlcreate's registration in that process; the test pins that down so
the documented form stays the one that works."""

import subprocess
import sys
import textwrap

import pytest

WORKER_SCRIPT = textwrap.dedent('''
    import multiprocessing as mp
    import sys

    import gymnasium as gym


    def tile_mean(samples, **context):
        return [float(s.mean()) for s in samples]


    def worker(env_id, vector):
        fresh = "rlcreate" not in sys.modules
        try:
            if vector:
                env = gym.make_vec(env_id, num_envs=2, n_segments=2, reward=tile_mean)
            else:
                env = gym.make(env_id, n_segments=2, reward=tile_mean)
            obs, _ = env.reset(seed=0)
            return fresh, f"{type(env.unwrapped).__name__} {tuple(obs.shape)}"
        except Exception as err:
            return fresh, f"{type(err).__name__}: {err}"


    if __name__ == "__main__":
        import json

        ctx = mp.get_context("spawn")
        results = []
        for env_id, vector in [("rlcreate:rlcreate/MarioLatent-v0", True), ("rlcreate:rlcreate/MarioLatent-v0", False),
                               ("rlcreate/MarioLatent-v0", True)]:
            with ctx.Pool(1, maxtasksperchild=1) as pool:  # a new spawned process per case
                results.append(pool.apply(worker, (env_id, vector)))
        print(json.dumps(results))
''')


@pytest.mark.slow
def test_module_form_resolves_in_spawned_processes(tmp_path):
    import json

    script = tmp_path / "spawn_ids.py"
    script.write_text(WORKER_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (fresh1, vec), (fresh2, single), (fresh3, plain) = json.loads(done.stdout.strip().splitlines()[-1])
    assert fresh1 and fresh2 and fresh3  # the workers had not imported rlcreate
    assert vec == "CoreVectorEnv (2, 35)"
    assert single == "LatentLevelEnv (35,)"
    assert plain.startswith("NamespaceNotFound") and "rlcreate" in plain


SUBPROC_SCRIPT = textwrap.dedent('''
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    if __name__ == "__main__":
        # the README's line: SubprocVecEnv workers are fresh processes, so the id names its module
        venv = make_vec_env("rlcreate:rlcreate/MarioLatent-v0", n_envs=2, vec_env_cls=SubprocVecEnv,
                            env_kwargs={"n_segments": 2})
        print("obs", venv.reset().shape)
        venv.close()
''')


@pytest.mark.slow  # starts SB3 worker processes
def test_sb3_subproc_vec_env_with_the_module_form(tmp_path):
    script = tmp_path / "subproc.py"
    script.write_text(SUBPROC_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "obs (2, 35)" in done.stdout

"""A third domain defined only here — binary mazes from a tiny random decoder, scored by
reachability — runs check -> train -> generate -> eval -> report through the domain registry and
the generic env core, without any change to rlcreate's generic files (the architecture's proof)."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from rlcreate.cli import main
from rlcreate.domains import Domain, domain_of, register_domain
from rlcreate.envs.latent_level import LatentLevelCore, LatentLevelEnv, LatentLevelVecEnv
from rlcreate.rewards import RewardModule, register

MAZE_ID = "rlcreate/TestMaze-v0"
H, W = 6, 4  # rows of a maze, columns per decoded segment


class TinyMazeDecoder:
    """Latent (b, 4) -> (b, 6, 4) walls (1) / floor (0) through a fixed random linear map."""

    latent_dim, segment_width, height, action_scale = 4, W, H, 1.0

    def __init__(self, seed: int = 0):
        self.w = np.random.default_rng(seed).standard_normal((self.latent_dim, H * W))

    def decode(self, z: np.ndarray) -> np.ndarray:
        return ((np.asarray(z) @ self.w) > 0.5).reshape(len(z), H, W).astype(np.int8)


def reachable(grid: np.ndarray) -> float:
    """Share of the maze's columns a walker entering at any open cell of column 0 reaches (BFS)."""
    g = np.asarray(grid)
    seen = np.zeros_like(g, bool)
    todo = deque((r, 0) for r in range(g.shape[0]) if g[r, 0] == 0)
    for r, c in todo:
        seen[r, c] = True
    while todo:
        r, c = todo.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < g.shape[0] and 0 <= cc < g.shape[1] and not seen[rr, cc] and g[rr, cc] == 0:
                seen[rr, cc] = True
                todo.append((rr, cc))
    return float(seen.any(axis=0).mean())


@register("maze_reachable")
class MazeReachable(RewardModule):
    """Share of a maze segment's columns reachable from its left edge. Range [0, 1]. Gamed by an
    empty maze (no walls), which is why a real maze domain would pair it with a wall-density term."""

    artifact = "maze"

    def score(self, samples, **context):
        return [reachable(g) for g in samples]


def _density(segments: np.ndarray) -> np.ndarray:
    return np.asarray(segments, np.float64).mean(axis=(1, 2))[:, None]


def _core(n: int, n_segments: int, reward, targets=None) -> LatentLevelCore:
    return LatentLevelCore(TinyMazeDecoder(), reward, _density, 1, n_segments=n_segments, targets=targets, n=n)


def make_maze_env(n_segments: int = 3, reward=None):
    from rlcreate.rewards.compose import RewardSet, Term

    return LatentLevelEnv(_core(1, n_segments, reward or RewardSet([Term("reach", MazeReachable())])))


def make_maze_vec(n_envs: int = 4, n_segments: int = 3, targets=None, reward=None, seed=None):
    return LatentLevelVecEnv(_core(n_envs, n_segments, reward, targets), seed=seed)


def wall_density(mazes) -> float:
    return float(np.mean([np.mean(m) for m in mazes]))


class MazeDomain(Domain):
    name, artifact = "maze", "maze"
    envs = {MAZE_ID: "tests.test_domain_plugin:make_maze_env"}
    vector_envs = {MAZE_ID: "tests.test_domain_plugin:make_maze_vec"}  # Domain's default make_vec_env uses it
    # the proxy (reachability) is gamed by an empty maze; the judge counts the walls it should keep
    counterparts = {"maze_reachable": ("walls", "density", "reachability vs wall density")}

    def audit_checkpoint(self, asm, model, progress, n, deterministic, seed, judges):
        from rlcreate.train.runner import rollout

        episodes = rollout(model, asm.make_env(n, seed, "eval"), n, deterministic=deterministic)
        mazes = [e["level"] for e in episodes]
        terms = {k: float(np.mean([e["term_means"][k] for e in episodes])) for k in episodes[0]["term_means"]}
        same = all(np.array_equal(m, mazes[0]) for m in mazes)
        flags = {"memorisation": {"flag": False, "reason": "no corpus"},
                 "collapse": {"flag": same, "reason": "all mazes identical" if same else "mazes differ"}}
        return terms, {"walls": {"density": wall_density(mazes)}}, flags

    def default_rewards(self, env_id):
        return {"reach": {"reward": "maze_reachable", "weight": 1.0}}

    def generate(self, model, asm, n, out, targets=None, seed=None):
        from rlcreate.train.runner import rollout

        episodes = rollout(model, asm.make_env(n, asm.recipe.seed + 1 if seed is None else seed, "eval"), n)
        mazes = [e["level"].tolist() for e in episodes]
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "mazes.json").write_text(json.dumps(mazes))
        summary = {"n": len(mazes), "mean": {"reachable": float(np.mean([reachable(m) for m in mazes]))}}
        (out / "metrics.json").write_text(json.dumps(summary))
        return summary

    def evaluate(self, run, asm, n=None, **_):
        mazes = self.read_samples(run / "samples")
        return {"run": run.name, "source": "samples/", "n_levels": len(mazes),
                "judges": {"walls": {"mean_density": wall_density(mazes)}}}

    def read_samples(self, folder):
        path = Path(folder) / "mazes.json"
        return [np.array(m) for m in json.loads(path.read_text())] if path.is_file() else []

    def gallery_html(self, run_data, index, img_dir, limit):
        rows = ["".join("#" if v else "." for v in row) for m in run_data["samples"][:limit] for row in m]
        return "<h3>Mazes</h3><pre class='maze'>" + "\n".join(rows) + "</pre>"


@pytest.fixture(scope="module")
def maze_domain():
    return register_domain(MazeDomain())


def test_maze_domain_runs_every_command_through_the_registry(maze_domain, tmp_path, capsys):
    import gymnasium as gym

    assert domain_of(MAZE_ID) is maze_domain
    env = gym.make(MAZE_ID)  # registered with Gymnasium by register_domain
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    recipe = tmp_path / "maze.yaml"
    recipe.write_text(f"name: maze\nseed: 0\nenv: {{id: {MAZE_ID}, kwargs: {{n_segments: 3}}}}\n"
                      "trainer: {total_timesteps: 96, n_envs: 4, checkpoints: 2, samples: 4,\n"
                      "          hyper: {n_steps: 12, batch_size: 16, n_epochs: 1}}\n")
    runs = tmp_path / "runs"
    assert main(["check", str(recipe)]) == 0
    assert "domain maze" in capsys.readouterr().out
    assert main(["train", str(recipe), "--out", str(runs), "--quiet"]) == 0
    run = runs / "maze"
    mazes = json.loads((run / "samples" / "mazes.json").read_text())
    assert len(mazes) == 4 and np.array(mazes[0]).shape == (H, 3 * W)
    assert main(["generate", str(run), "--n", "2", "--out", str(tmp_path / "gen")]) == 0
    assert len(json.loads((tmp_path / "gen" / "mazes.json").read_text())) == 2
    assert main(["eval", str(run), "--no-audit"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["judges"]["walls"]["mean_density"] <= 1.0
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<pre class='maze'>" in page and "walls.mean_density" in page


def test_maze_recipe_errors_name_the_field(maze_domain, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"env: {{id: {MAZE_ID}, kwargs: {{n_segmnts: 3}}}}\n")
    assert main(["check", str(bad)]) == 2
    assert "Did you mean 'n_segments'" in capsys.readouterr().err
    bad.write_text(f"env: {{id: {MAZE_ID}}}\nrewards: {{p: {{reward: playability}}}}\n")
    assert main(["check", str(bad)]) == 2  # a level reward on a maze env
    assert "scores levels but rlcreate/TestMaze-v0 makes mazes" in capsys.readouterr().err
    bad.write_text(f"env: {{id: {MAZE_ID}}}\n")
    assert main(["baseline", str(bad), "--method", "cma"]) == 2  # the maze domain ships no baselines
    assert "not a baseline for rlcreate/TestMaze-v0" in capsys.readouterr().err


def test_check_fails_for_a_domain_that_cannot_finish_a_run(maze_domain, tmp_path, capsys):
    """A domain that trains but cannot write samples would fail at the end of `train`: check says so first."""
    no_samples_id = "rlcreate/TestMazeNoSamples-v0"

    class NoSamples(MazeDomain):
        name = "maze-no-samples"
        envs = {no_samples_id: "tests.test_domain_plugin:make_maze_env"}
        vector_envs = {no_samples_id: "tests.test_domain_plugin:make_maze_vec"}
        generate = Domain.generate

    assert NoSamples().cannot_finish() == ["generate (writing samples)"] and maze_domain.cannot_finish() == []
    register_domain(NoSamples())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"env: {{id: {no_samples_id}}}\n")
    assert main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "the 'maze-no-samples' domain cannot finish a run: it does not implement generate" in err, err


class MazeRecorder(MazeReachable):
    """Scores like maze_reachable and keeps what it scored. Range [0, 1]. Gamed by an empty maze."""

    seen: list = []

    def score(self, samples, **context):
        MazeRecorder.seen.extend(np.asarray(s).tolist() for s in samples)
        return super().score(samples, **context)


def test_check_runs_the_same_dry_run_episode_every_time(maze_domain):
    # the dry run's continuous actions came from an unseeded action space: check was not repeatable
    from rlcreate.assemble import assemble, dry_run
    from rlcreate.recipe import parse_recipe

    recipe = parse_recipe({"env": MAZE_ID, "rewards": {"r": {"reward": "tests.test_domain_plugin:MazeRecorder"}}})
    runs = []
    for _ in range(2):
        MazeRecorder.seen = []
        dry_run(assemble(recipe))
        runs.append(MazeRecorder.seen)
    assert runs[0] and runs[0] == runs[1]


# ---- the audit on a planted run: checkpoints whose policies are set by hand ----------------------

def _plant(run: Path, latents: list[float]) -> None:
    """Overwrite the run's checkpoints (oldest first) with policies that always output the latent
    ``z * ones`` (weights 0, bias z, tiny std), keeping everything else of the checkpoint."""
    import torch

    from rlcreate.evaluation.audit import checkpoints_of
    from rlcreate.sb3 import save_checkpoint
    from rlcreate.train.runner import restore

    ckpts = checkpoints_of(run)  # step_48 and the final model/ at 96
    assert len(ckpts) == len(latents)
    for (_steps, folder, _), z in zip(ckpts, latents):
        asm, model = restore(run, checkpoint=folder)
        with torch.no_grad():
            model.policy.action_net.weight.zero_()
            model.policy.action_net.bias.fill_(z)
            model.policy.log_std.fill_(-20.0)
        save_checkpoint(folder, model, asm.reward_set, dict(asm.recipe.trainer.hyper), asm.recipe.trainer.algo)


@pytest.fixture()
def maze_run(maze_domain, tmp_path):
    recipe = tmp_path / "maze.yaml"
    recipe.write_text(f"name: maze\nseed: 0\nenv: {{id: {MAZE_ID}, kwargs: {{n_segments: 2}}}}\n"
                      "trainer: {total_timesteps: 96, n_envs: 4, checkpoints: 2, samples: 2,\n"
                      "          hyper: {n_steps: 12, batch_size: 16, n_epochs: 1}}\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    return tmp_path / "runs" / "maze"


def test_audit_flags_a_planted_gamed_proxy(maze_run):
    """Checkpoint 1 writes walled mazes (z = -1), checkpoint 2 empty ones (z = 0): reachability (the
    proxy) rises to 1 while wall density (its judge) falls to 0 — the audit must say diverged."""
    from rlcreate.evaluation.audit import audit_run

    walled = TinyMazeDecoder().decode(-np.ones((1, 4)))[0]
    assert 0.2 < walled.mean() < 0.9 and reachable(walled) < 1.0  # the planted start is a real maze
    _plant(maze_run, [-1.0, 0.0])
    audit = audit_run(maze_run, n_levels=4, write=False)
    pair = audit["pairs"]["reach"]
    assert pair["verdict"] == "diverged", pair
    assert pair["proxy"][-1] == 1.0 and pair["judge"][-1] == 0.0
    assert audit["flags"]["stochastic"]["collapse"]["flag"]


def test_audit_passes_an_unchanged_policy(maze_run):
    from rlcreate.evaluation.audit import audit_run

    _plant(maze_run, [-1.0, -1.0])
    pair = audit_run(maze_run, n_levels=4, write=False)["pairs"]["reach"]
    assert pair["verdict"] == "ok" and pair["proxy_change"] == 0.0, pair

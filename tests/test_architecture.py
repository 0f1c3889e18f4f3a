"""The architecture's promises, checked: no import circles, no env-id dispatch or domain import in
the generic layers, and regression tests for the bugs the split into domains fixed."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlcreate.cli import main

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ["rlcreate/cli.py", "rlcreate/recipe.py", "rlcreate/assemble.py", "rlcreate/domains.py",
           "rlcreate/trainers.py", "rlcreate/validate.py", "rlcreate/errors.py", "rlcreate/train/runner.py",
           "rlcreate/train/checkpoint.py", "rlcreate/evaluation/baselines.py", "rlcreate/evaluation/audit.py",
           "rlcreate/evaluation/report.py", "rlcreate/evaluation/cli.py", "rlcreate/evaluation/html.py",
           "envs/core_vec_env.py", "envs/latent_level.py", "envs/column_tokens.py", "envs/text_tokens.py",
           "envs/gym_vector.py", "rewards/base.py", "rewards/compose.py",
           "rewards/transforms.py", "rewards/registry.py", "rewards/novelty.py", "rewards/trl_adapter.py",
           "rlcreate/benchmark.py", "rlcreate/hf_cache.py", "envs/target_control.py", "envs/token_stream.py",
           "rlcreate/scripting.py", "rlcreate/safe_io.py", "rlcreate/runbox.py"]
# plugins: generic layers reach them only by name through rlcreate.domains / rlcreate.trainers
DOMAIN_PACKAGES = ("rlcreate.levels", "rlcreate.text")
TRAINER_PACKAGES = ("rlcreate.sb3", "rlcreate.trl")


def stage_package(dest: Path) -> Path:
    """The installed layout of the package under ``dest`` (envs/ and rewards/ inside rlcreate/, as
    pyproject's package-dir mapping installs them), so import tools see every module in place."""
    import shutil

    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "models", "data", "java")
    shutil.copytree(ROOT / "rlcreate", dest / "rlcreate", ignore=skip)
    for folder in ("envs", "rewards"):
        shutil.copytree(ROOT / folder, dest / "rlcreate" / folder, ignore=skip)
    return dest


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return stage_package(tmp_path_factory.mktemp("staged"))


def _in_staged(staged: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run([sys.executable, "-c", code], cwd=staged, env=env, capture_output=True, text=True,
                          timeout=300)


def test_layer_contract_counts_function_level_imports(staged):
    """import-linter's layers contract (pyproject.toml [tool.importlinter]) over the real package.
    grimp reads every import statement, inside functions too."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))")
    out = _in_staged(staged, code)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_no_import_circles_counting_function_level_imports(staged):
    code = """
import grimp
g = grimp.build_graph("rlcreate", cache_dir=None, exclude_type_checking_imports=True)
graph = {m: g.find_modules_directly_imported_by(m) - {m} for m in g.modules if m.startswith("rlcreate")}
state, cycles = {}, []
def visit(m, stack):
    state[m] = 1
    for n in sorted(graph.get(m, ())):
        if state.get(n) == 1:
            cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
        elif not state.get(n):
            visit(n, stack + [n])
    state[m] = 2
for m in sorted(graph):
    if not state.get(m):
        visit(m, [m])
print(len(graph), "modules")
print("\\n".join(cycles))
"""
    out = _in_staged(staged, code)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert int(lines[0].split()[0]) > 50, lines[0]  # the graph really holds the package
    assert lines[1:] == [], "import circles:\n" + "\n".join(lines[1:])


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants that are not docstrings."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


@pytest.mark.parametrize("rel", GENERIC)
def test_generic_layers_have_no_domain_dispatch(rel):
    text = (ROOT / rel).read_text()
    tree = ast.parse(text)
    if rel != "rlcreate/domains.py":  # the registry itself names the built-in domains' ids
        # an env id as a whole string is what dispatch compares against; ids inside messages are fine
        ids = [s for s in _code_strings(tree) if re.fullmatch(r"rlcreate/\w+-v\d+", s)]
        assert not ids, f"{rel} names env ids in code: {ids}"
    assert not re.search(r"\"Tokens\" in|TEXT_ENVS|LATENT_ENVS", text), rel
    for node in ast.walk(tree):  # no domain or trainer import, not even lazily inside functions
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith(DOMAIN_PACKAGES + TRAINER_PACKAGES), f"{rel} imports {node.module}"
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.startswith(DOMAIN_PACKAGES + TRAINER_PACKAGES)]
            assert not bad, f"{rel} imports {bad}"
    libraries = ("sb3_contrib", "trl", "peft") + (() if rel.startswith("envs/") else ("stable_baselines3",))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)  # `if TYPE_CHECKING:` never runs
                   and getattr(block.test, "id", "") == "TYPE_CHECKING" for node in block.body for n in ast.walk(node)}
    nodes = [n for n in ast.walk(tree) if id(n) not in typing_only]
    used = {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module} | \
        {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in used if m.split(".")[0] in libraries], f"{rel} imports a trainer library: {sorted(used)}"



# ---- regressions ---------------------------------------------------------------------------------

TINY = "trainer: {total_timesteps: 64, n_envs: 4, checkpoints: 1, samples: 2, hyper: {n_steps: 16, batch_size: 32, n_epochs: 1}}\n"


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    import torch

    from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig

    root = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    LatentLevelGenerator.from_module(LevelVAE(VAEConfig(latent_dim=8, hidden=16))).save(root / "vae")
    return root / "vae"


def test_generator_folder_in_env_kwargs_works_for_train_and_generate(vae_folder, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: g\nenv: {{id: rlcreate/MarioLatent-v0, kwargs: {{generator: {vae_folder}, "
                      f"n_segments: 2}}}}\n" + TINY)
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    assert main(["generate", str(tmp_path / "runs" / "g"), "--n", "2", "--out", str(tmp_path / "gen")]) == 0
    assert len(list((tmp_path / "gen").glob("level_*.txt"))) == 2


@pytest.mark.parametrize("body, message", [
    ("env: {id: rlcreate/MarioLatent-v0, kwargs: {n_segmnts: 4}}\n", "env.kwargs: unknown key 'n_segmnts'. Did you mean 'n_segments'"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {f: {reward: fluency}}\n", "scores texts but rlcreate/MarioLatent-v0 makes levels"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {n: {reward: level_novelty, args: {k: 0}}}\n", "rewards.n: k=0 must be an integer >= 1"),
    ("env: {id: rlcreate/TextTokens-v0}\nrewards: {m: {reward: memorization, args: {min_n: 0}}}\n", "rewards.m: min_n=0"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {n: {reward: level_novelty, args: {kk: 3}}}\n", "rewards.n.args"),
    ("env: {id: rlcreate/MarioLatent-v0}\njudges: [tile_kll]\n", "Did you mean 'tile_kl'"),
    ("env: {id: rlcreate/MarioLatent-v0}\ntrainer: {hyper: {learning_rat: 0.1}}\n", "learning_rat"),
])
def test_check_fails_where_train_would(tmp_path, capsys, body, message):
    path = tmp_path / "r.yaml"
    path.write_text(body)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_missing_recipe_message_names_a_real_fix(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "rlcreate recipes" not in err and "rlcreate/recipes/mario_latent.yaml" in err


def test_generate_and_eval_restore_the_same_reward_state(vae_folder, tmp_path, monkeypatch):
    """Both commands go through runner.restore, which loads the run's saved reward state."""
    import rlcreate.train.runner as runner
    from rlcreate.train.checkpoint import load_tree

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: s\nenv: {{id: rlcreate/MarioLatent-v0, kwargs: {{generator: {vae_folder}, "
                      f"n_segments: 2}}}}\n" + TINY)
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    run = tmp_path / "runs" / "s"
    saved = load_tree(run / "model" / "reward_state.npz")
    seen = []
    real = runner.restore

    def spy(*args, **kwargs):
        asm, model = real(*args, **kwargs)
        seen.append(asm.reward_set.state_dict())
        return asm, model

    monkeypatch.setattr(runner, "restore", spy)
    assert main(["generate", str(run), "--n", "2", "--out", str(tmp_path / "gen")]) == 0
    assert main(["eval", str(run), "--judges", "validity", "--no-audit"]) == 0
    assert len(seen) == 2
    archive = saved["novelty"]["archive"] if "archive" in saved.get("novelty", {}) else None
    for state in seen:  # the archive both commands score against is the trained one
        got = state["novelty"]
        if archive is not None:
            np.testing.assert_array_equal(np.asarray(got["archive"]), np.asarray(archive))
        assert set(got) == set(saved["novelty"])


# ---- loose ends found by reading (regressions) ----------------------------------------------------

def test_old_mario_tokens_id_points_to_the_bumped_one(tmp_path, capsys):
    """MarioTokens observations changed (schedule deficits, offer gains): the id is v1 and v0 is gone."""
    path = tmp_path / "r.yaml"
    path.write_text("env: {id: rlcreate/MarioTokens-v0}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "rlcreate/MarioTokens-v1" in err and err.count("\n") == 1, err


def test_text_env_is_the_generic_single_env_form():
    from rlcreate.envs.core_vec_env import CoreEnv, EnvConfigError
    from rlcreate.envs.text_tokens import TextEnvConfigError, TextTokensEnv

    assert issubclass(TextTokensEnv, CoreEnv) and issubclass(TextEnvConfigError, EnvConfigError)
    assert "step" not in vars(TextTokensEnv) and "__init__" not in vars(TextTokensEnv)


def test_one_message_to_text_converter():
    from rlcreate.rewards.base import message_text, prompt_text
    from rlcreate.text.rewards import TextRewardError, _prompts_from, as_texts

    conv = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a poem"}]
    assert as_texts([conv, "plain"]) == [message_text(conv), "plain"]
    assert _prompts_from({"prompts": [conv]}, 1, True, "m") == [prompt_text(conv)] == ["a poem"]
    with pytest.raises(TextRewardError, match="completion 0 is a int"):
        as_texts([3])


def test_bench_text_creativity_calls_the_library_baseline():
    tree = ast.parse((ROOT / "scripts" / "bench_text_creativity.py").read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "rlcreate.text.baselines"
                for a in n.names}
    assert "several_answers" in imported and "several_answers" not in defined


def test_no_reference_to_removed_modules():
    """Dead fallbacks to modules that no longer exist (rlcreate.envs.mario) stay gone."""
    for folder in ("rlcreate", "envs", "rewards", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "rlcreate.envs.mario" not in path.read_text(), path


def test_calling_every_reward_imports_no_rl_library():
    """Reward modules score artifacts: calling each level and text reward on a tiny batch loads no
    gymnasium, stable_baselines3 or trl (checked in a fresh process, by calling, not importing)."""
    code = """
import sys
import numpy as np
from rlcreate.rewards import get_reward
level = np.zeros((14, 32), np.int64); level[-2:] = 1
calls = {"playability": [level], "level_novelty": [level], "style_coherence": [level], "validity": [level],
         "difficulty_curve": [level], "target_match": [level], "element_profile": [level],
         "set_profile": [level, level], "batch_diversity": [level, level],
         "distinct_n": ["a b c", "a b d"], "self_bleu_diversity": ["a b c", "a b d"],
         "memorization": ["a small text here"], "group_diversity": ["a cat sat", "the dog ran"]}
for name, samples in calls.items():
    kwargs = {"equivalence": "lexical"} if name == "group_diversity" else {}
    values = get_reward(name, **kwargs)(samples)
    assert len(values) == len(samples), name
print(sorted(m for m in ("gymnasium", "stable_baselines3", "trl", "sb3_contrib") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_domain_options_are_registered_by_domains_and_refused_on_other_domains():
    """`--astar-runs` (eval) and `--descriptors` (baseline) come from the levels domain, `--n`
    (baseline) from the text domain; given on a run of the other domain they are an error."""
    from rlcreate.cli import build_parser
    from rlcreate.domains import UnsupportedError, domain_of, domain_options

    levels, text = domain_of("rlcreate/MarioTokens-v1"), domain_of("rlcreate/TextTokens-v0")
    args = build_parser().parse_args(["eval", "RUN", "--astar-runs", "3"])
    given = {d: getattr(args, d) for d in args.domain_options}
    assert domain_options("eval", given, levels) == {"astar_runs": 3}
    with pytest.raises(UnsupportedError, match="eval --astar-runs: an option of the levels domain"):
        domain_options("eval", given, text)
    args = build_parser().parse_args(["baseline", "R.yaml", "--n", "4", "--descriptors", "enemies,gaps"])
    given = {d: getattr(args, d) for d in args.domain_options}
    assert given == {"n": 4, "descriptors": ["enemies", "gaps"]}
    with pytest.raises(UnsupportedError, match="baseline --n: an option of the text domain"):
        domain_options("baseline", given, levels)
    assert domain_options("baseline", {"n": 4, "lm": "loaded"}, text) == {"n": 4, "lm": "loaded"}

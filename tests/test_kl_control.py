"""Ziegler et al.'s adaptive KL coefficient (rlcreate.sb3.kl_control): the update rule, real
MaskablePPO runs on rlcreate/MarioTokens-v1 (beta follows the rule and is logged with the KL), the
KL it measures against a direct computation, recipe validation (exit 2, one ``error:`` line) and
resume keeping beta. A small config: 16 columns, top 8, 2 envs x 16 steps per rollout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from rlcreate.recipe import RecipeError, parse_recipe
from rlcreate.sb3.kl_control import ERROR_CLIP, KLController, kl_beta_update, measure_kl

BETA0, HORIZON = 0.05, 100
ROLLOUT = 2 * 16  # n_envs * n_steps
HYPER = {"policy": "lm_prior", "n_steps": 16, "batch_size": 32, "n_epochs": 1, "ent_coef": BETA0,
         "policy_kwargs": {"prior_start": 128, "kl_to_prior": True, "net_arch": [16]}}


def recipe_dict(kl_target=None, total=4 * ROLLOUT, hyper=None, **trainer) -> dict:
    return {"name": "kl", "seed": 0,
            "env": {"id": "rlcreate/MarioTokens-v1", "kwargs": {"n_columns": 16, "k": 8}},
            "rewards": {"playability": {"weight": 1.0}},
            "trainer": {"algo": "maskable_ppo", "total_timesteps": total, "n_envs": 2, "checkpoints": 0,
                        "samples": 2, "kl_target": kl_target, "kl_horizon": HORIZON,
                        "hyper": dict(HYPER if hyper is None else hyper), **trainer}}


def train(tmp_path: Path, name: str, resume: bool = False, **kw):
    from rlcreate.train.runner import train_run

    train_run(parse_recipe(recipe_dict(**kw)), tmp_path / name, progress_bar=False, resume=resume)
    return tmp_path / name


def scalars(run: Path, tag: str) -> list[float]:
    """The values logged under ``tag``, in step order, over all of the run's TensorBoard folders."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = []
    for events in sorted({p.parent for p in (run / "tb").rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            out += [(e.step, e.value) for e in acc.Scalars(tag)]
    return [v for _, v in sorted(out)]


def final_beta(run: Path) -> float:
    return json.loads((run / "model" / "trainer_state.json").read_text())["ent_coef"]


# ------------------------------------------------------------------------------ the rule

def test_update_rule_raises_lowers_and_clips():
    n, h = 4096, 10000
    assert kl_beta_update(0.1, 0.12, 0.1, n, h) == pytest.approx(0.1 * (1 + 0.2 * n / h))   # KL above: up
    assert kl_beta_update(0.1, 0.09, 0.1, n, h) == pytest.approx(0.1 * (1 - 0.1 * n / h))   # below: down
    assert kl_beta_update(0.1, 0.1, 0.1, n, h) == pytest.approx(0.1)                        # on target: same
    # the proportional error is clipped to +-0.2: ten times the target moves beta as much as 1.2 times
    assert kl_beta_update(0.1, 1.0, 0.1, n, h) == kl_beta_update(0.1, 0.12, 0.1, n, h)
    assert kl_beta_update(0.1, 0.0, 0.1, n, h) == pytest.approx(0.1 * (1 - ERROR_CLIP * n / h))
    # a longer horizon moves it less; beta stays positive while n <= horizon / 0.2
    assert kl_beta_update(0.1, 1.0, 0.1, n, 10 * h) < kl_beta_update(0.1, 1.0, 0.1, n, h)
    assert kl_beta_update(0.1, 0.0, 0.1, n, n) > 0


# ------------------------------------------------------------------------------ real runs

@pytest.mark.parametrize("kl_target, factor", [(1e-4, 1 + ERROR_CLIP * ROLLOUT / HORIZON),   # KL far above
                                               (100.0, 1 - ERROR_CLIP * ROLLOUT / HORIZON)])  # KL far below
def test_beta_follows_the_measured_kl_and_is_logged(tmp_path, kl_target, factor):
    run = train(tmp_path, "run", kl_target=kl_target)
    kl = scalars(run, "train/kl")
    assert len(kl) == 4 and all(0 < v < 20 for v in kl), kl  # 4 rollouts, a finite positive KL each
    # every rollout's KL is beyond the clip, so beta moved by exactly one clipped step per rollout
    assert all(v / kl_target - 1 > ERROR_CLIP if factor > 1 else v / kl_target - 1 < -ERROR_CLIP for v in kl)
    expected = [BETA0 * factor ** i for i in range(1, 5)]
    assert scalars(run, "train/kl_beta") == pytest.approx(expected, rel=1e-5)
    assert final_beta(run) == pytest.approx(expected[-1], rel=1e-12)


def test_fixed_beta_logs_kl_and_keeps_ent_coef(tmp_path):
    run = train(tmp_path, "fixed", kl_target=None)
    assert len(scalars(run, "train/kl")) == 4
    assert scalars(run, "train/kl_beta") == pytest.approx([BETA0] * 4)
    assert final_beta(run) == BETA0


def test_measured_kl_is_the_policy_to_lm_kl(tmp_path):
    """``measure_kl`` (read from evaluate_actions' -KL "entropy") equals KL(pi || p_LM) computed
    here from the policy's probabilities and the LM's log-probs on the rollout's states."""
    from rlcreate.assemble import assemble
    from rlcreate.sb3 import make_algo

    recipe = parse_recipe(recipe_dict(kl_target=0.01, total=ROLLOUT))
    asm = assemble(recipe)
    venv = asm.make_env()
    model = make_algo(recipe, venv, None)
    model.learn(2 * ROLLOUT, callback=KLController(0.01, HORIZON))  # the policy moved off the LM
    buf = model.rollout_buffer
    obs = torch.as_tensor(buf.observations.reshape(-1, *buf.obs_shape))
    masks = buf.action_masks.reshape(-1, buf.mask_dims).astype(bool)
    with torch.no_grad():
        p = model.policy.get_distribution(obs, masks).distribution.probs.double()
        log_lm = model.policy.prior_logits(obs).double()
    log_p = torch.where(p > 0, p.log(), torch.zeros_like(p))
    direct = float((p * (log_p - log_lm)).sum(-1).mean())
    assert direct > 0 and math.isfinite(direct)
    assert measure_kl(model) == pytest.approx(direct, rel=1e-4)
    # a stride over the states is a subsample of the same rollout: close to, not equal to, the mean
    assert measure_kl(model, max_states=8) > 0
    venv.close()


def test_resume_keeps_beta(tmp_path):
    """Two rollouts, then --resume to four: beta continues from its saved value (as in one run of
    four rollouts), not from ent_coef; the checkpoint holds it in trainer_state.json."""
    up = 1 + ERROR_CLIP * ROLLOUT / HORIZON
    run = train(tmp_path, "run", kl_target=1e-4, total=2 * ROLLOUT)
    assert final_beta(run) == pytest.approx(BETA0 * up ** 2, rel=1e-12)
    train(tmp_path, "run", resume=True, kl_target=1e-4, total=4 * ROLLOUT)
    assert final_beta(run) == pytest.approx(BETA0 * up ** 4, rel=1e-12)
    assert scalars(run, "train/kl_beta")[-1] == pytest.approx(BETA0 * up ** 4, rel=1e-5)


def test_checkpoints_save_beta(tmp_path):
    run = train(tmp_path, "ck", kl_target=1e-4, checkpoint_every={"steps": 2 * ROLLOUT})
    state = json.loads((run / "checkpoints" / f"step_{2 * ROLLOUT:09d}" / "trainer_state.json").read_text())
    assert state["ent_coef"] == pytest.approx(BETA0 * (1 + ERROR_CLIP * ROLLOUT / HORIZON) ** 2, rel=1e-12)


# ------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("trainer, match", [
    ({"kl_target": -0.1}, r"trainer.kl_target = -0.1: must be > 0"),
    ({"kl_target": "low"}, r"trainer.kl_target = 'low': must be a finite number"),
    ({"kl_target": float("nan")}, r"trainer.kl_target = nan: must be a finite number"),
    ({"kl_horizon": 0}, r"trainer.kl_horizon = 0: must be an integer in \[1, "),
    ({"kl_horizon": 1.5}, r"trainer.kl_horizon = 1.5: must be an integer"),
])
def test_recipe_numbers_are_checked_on_load(trainer, match):
    doc = recipe_dict(kl_target=0.01)
    doc["trainer"].update(trainer)
    with pytest.raises(RecipeError, match=match):
        parse_recipe(doc)


NO_KL = {k: v for k, v in HYPER.items() if k != "policy_kwargs"} | {"policy_kwargs": {"prior_start": 128}}
CASES = [
    (NO_KL, r"trainer.kl_target = 0.01: needs a KL to control: set trainer.hyper.policy: lm_prior and "
            r"trainer.hyper.policy_kwargs: \{kl_to_prior: true\}"),
    ({"n_steps": 16, "batch_size": 32}, r"trainer.kl_target = 0.01: needs a KL to control"),
    (HYPER | {"ent_coef": 0.0}, r"trainer.kl_target = 0.01: starts from beta = trainer.hyper.ent_coef, which is "
                                r"0.0; set trainer.hyper.ent_coef > 0"),
    ({k: v for k, v in HYPER.items() if k != "ent_coef"}, r"which is 0.0; set trainer.hyper.ent_coef > 0"),
]


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("hyper, match", CASES)
def test_cli_refuses_kl_target_without_a_kl(tmp_path, capsys, command, hyper, match):
    import re

    from rlcreate.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(kl_target=0.01, hyper=hyper)))
    args = [command, str(path)] + (["--out", str(tmp_path / "runs"), "--quiet"] if command == "train" else [])
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and re.search(match, errors[0]), err
    assert not (tmp_path / "runs" / "kl").exists()  # refused before the run folder is written


def test_kl_target_with_a_kl_passes_check(tmp_path, capsys):
    from rlcreate.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(kl_target=0.01)))
    assert main(["check", str(path)]) == 0
    assert ": OK" in capsys.readouterr().out

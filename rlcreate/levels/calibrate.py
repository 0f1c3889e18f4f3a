"""Calibrate a policy's pipe, ?-block and coin rates to human levels after training (the column-LM
token env, and the latent env with a column-LM generator).

Why: the set's element means are a statistic of the whole set, and PPO gets little credit per level
for them (``set_profile`` pays each level its share of the batch mean's gap, weakest for coins,
whose per-window spread is the largest). Measured on the demo recipe (BENCHMARKS.md, "Calibrating
the set's element rates"), the means wander from checkpoint to checkpoint by more than the human
band's width, and where training stops decides the set. Rates are what sampling calibration is
for: the env's ``element_bias`` logit offsets (added to every offered column holding the element,
before the top-k) move them while the policy keeps its learned preferences among the offers.

The fit is a damped multiplicative fixed point on **selection requests** (env seeds from
``env_seed``, away from the demo's, the benches' and TEST's human windows; the target is the human
TRAINING windows' mean per 128 columns): each round samples the same requests with the current
offsets (common random numbers, so rounds differ by the offsets, not the draw), and moves each
offset by ``damping * log(target / measured)``. The offsets returned are those of the *measured*
round closest to the target (the largest log-ratio over the elements smallest), never an
extrapolated step. ``method="fit"`` fits the policy's response instead (:func:`fitted_offsets`).
Enemies and gaps are left to the control targets.

The latent env (``MarioLatent-v1`` with its default column-LM generator) has the same offsets on
the LM that decodes its noise: every candidate segment is drawn with them, and the policy keeps
choosing among them by what it learnt (acting by its mean, so the fit samples that way too).

``rlcreate demo`` and ``rlcreate calibrate RUN`` (any trained ``MarioTokens-v1`` run, e.g. a
designer-objective recipe's, or a ``MarioLatent-v1`` run with a column-LM generator) write the
policy's offsets into the run's ``config.yaml`` (:func:`write_calibration`; ``calibration.json``
keeps the fits and the offsets it trained with):
``eval``, ``report`` and ``generate`` then sample with them, ``demo --resume`` trains on with the
offsets the run trained with, and a plain ``train RUN --resume`` trains on with the calibrated ones.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATED_ELEMENTS",
    "calibrate_element_bias",
    "calibrate_run",
    "calibration_refusal",
    "fitted_offsets",
    "with_element_bias",
    "write_calibration",
]

#: elements whose rates the offsets set (the control targets cover enemies and gaps)
CALIBRATED_ELEMENTS = ("pipes", "question_blocks", "coins")


def calibration_refusal(recipe: Any) -> str | None:
    """Why ``recipe``'s env has no element-rate offsets to fit, or None when it has them (MarioTokens-v1;
    MarioLatent-v1 with a column-LM generator)."""
    from rlcreate.levels.envs import COLUMN_LM_GENERATORS

    if recipe.env_id == "rlcreate/MarioTokens-v1":
        return None
    if recipe.env_id == "rlcreate/MarioLatent-v1":
        generator = recipe.env.kwargs.get("generator")
        if generator in COLUMN_LM_GENERATORS:
            return None
        return f"its generator is {generator!r}, not the column LM (element_bias offsets are the column LM's)"
    return f"it is a {recipe.env_id} recipe (offsets exist for rlcreate/MarioTokens-v1 and rlcreate/MarioLatent-v1)"


def _start_bias(recipe: Any) -> dict:
    """The offsets the recipe's env samples with: its own ``element_bias``, else the env's default
    (none for the token env; the column LM generator's :data:`~rlcreate.levels.gan.DEFAULT_ELEMENT_BIAS`)."""
    from rlcreate.levels.gan import DEFAULT_ELEMENT_BIAS

    own = recipe.env.kwargs.get("element_bias")
    if own is None and recipe.env_id == "rlcreate/MarioLatent-v1":
        own = DEFAULT_ELEMENT_BIAS
    bias = {e: 0.0 for e in CALIBRATED_ELEMENTS}
    bias.update({k: float(v) for k, v in (own or {}).items()})
    return bias


def with_element_bias(recipe: Any, bias: dict) -> Any:
    """A copy of ``recipe`` whose env samples with these ``element_bias`` offsets."""
    r = copy.deepcopy(recipe)
    r.env.kwargs["element_bias"] = {k: float(v) for k, v in bias.items()}
    return r


def calibrate_element_bias(
    policy: Any,
    recipe: Any,
    levels: int = 192,
    rounds: int | None = None,
    env_seed: int = 1000,
    damping: float = 0.8,
    limit: float = 1.5,
    method: str = "closest",
) -> dict:
    """Offsets for ``recipe``'s env under which ``policy`` (a model, or a callable taking the
    assembly and returning the model, e.g. the untrained start) writes pipes, ?-blocks and coins at
    the human training windows' rate. Starts from the offsets the recipe's env samples with. Latent
    policies are sampled acting by their mean, as the demo and ``eval`` draw them.

    ``method="closest"`` (the default; ``rounds`` 3): damped steps ``damping * log(target /
    measured)``, which assume an offset moves the log-rate one for one, returning the measured
    round closest to the target. ``method="fit"`` (``rounds`` 4): each round's next offsets come
    from a line fitted per element to every round so far, ``log(mean) = a + s * offset``
    (:func:`fitted_offsets`), and the last round measures the offsets fitted on the others: those
    are returned, with that round's means. Measured (BENCHMARKS.md, "Calibration that fits the
    policy's response"): on six designer-objective policies, whose coins resisted the offsets, the
    fit removed the closest method's shortfall (sets 0.5 coins under the target); on the three demo
    policies, already near the target, its slopes fitted to close offsets were noise and it landed
    further off (?-blocks); neither raised the share of sets inside the human band measurably, so
    the default stays.

    Returns ``{"element_bias": {...}, "target": {...}, "rounds": [{"element_bias", "means",
    "error"}], "chosen_round", "levels", "env_seed", "method"}`` (``error``: the largest ``|log(mean /
    target)|``)."""
    from rlcreate.assemble import assemble
    from rlcreate.levels.quality import ELEMENTS, element_profile
    from rlcreate.levels.share import acts_by_mean, sample_levels
    from rlcreate.levels.value_rewards import human_element_stats

    if method not in ("fit", "closest"):
        raise ValueError(f"method = {method!r}: write fit or closest")
    rounds = (4 if method == "fit" else 3) if rounds is None else rounds
    if levels < 16 or rounds < 1:
        raise ValueError(f"levels = {levels}, rounds = {rounds}: need levels >= 16 and rounds >= 1")
    mu = human_element_stats(128)[0]
    target = {e: float(mu[ELEMENTS.index(e)]) for e in CALIBRATED_ELEMENTS}
    refusal = calibration_refusal(recipe)
    if refusal:
        raise ValueError(f"cannot calibrate {recipe.name!r}: {refusal}")
    bias = _start_bias(recipe)
    deterministic = acts_by_mean(recipe)
    history: list[dict] = []
    errors: list[float] = []
    for _ in range(rounds):
        asm = assemble(with_element_bias(recipe, bias))
        model = policy(asm) if callable(policy) else policy
        drawn: list = []
        for j in range(0, levels, 64):  # sets of 64 at fixed env / policy seeds: the same requests every round
            n = min(64, levels - j)
            drawn += sample_levels(model, asm, n, env_seed + j, env_seed + j, deterministic=deterministic)[0]
        prof = element_profile(drawn)
        means = {e: float(prof[e].mean()) for e in CALIBRATED_ELEMENTS}
        ratio = {e: np.log(target[e] / max(means[e], 0.05)) for e in CALIBRATED_ELEMENTS}
        errors.append(float(max(abs(x) for x in ratio.values())))
        history.append(
            {
                "element_bias": {e: round(b, 4) for e, b in bias.items()},
                "means": {e: round(m, 3) for e, m in means.items()},
                "error": round(errors[-1], 4),
            }
        )
        if method == "fit":
            bias = fitted_offsets(history, target, damping, limit)
        else:
            bias = {e: float(np.clip(bias[e] + damping * ratio[e], -limit, limit)) for e in CALIBRATED_ELEMENTS}
    chosen = len(history) - 1 if method == "fit" else int(np.argmin(errors))
    return {
        "element_bias": history[chosen]["element_bias"],
        "target": {e: round(t, 3) for e, t in target.items()},
        "rounds": history,
        "chosen_round": chosen,
        "levels": int(levels),
        "env_seed": int(env_seed),
        "method": method,
    }


#: the range a fitted slope of log(rate) on an offset is kept in: a noisy fit may find a flat or
#: negative response, and 1/slope sizes the next step
SLOPE_RANGE = (0.25, 2.0)
#: the largest change of an offset from the last measured one in one step
MAX_STEP = 0.5


def fitted_offsets(history: list[dict], target: dict, damping: float, limit: float) -> dict:
    """Next offsets per element from every round so far: least squares of ``log(mean)`` on the
    offset gives the slope ``s`` (kept in :data:`SLOPE_RANGE`; 1 when the offsets have not moved,
    e.g. after one round) and the intercept ``a``, and the next offset is where the line meets the
    target, ``(log(target) - a) / s``. After a single round the step is damped (``damping``), as
    the slope is only assumed. Steps are at most :data:`MAX_STEP` from the last measured offset and
    offsets stay in ``[-limit, limit]``."""
    out = {}
    for e, t in target.items():
        b = np.array([h["element_bias"][e] for h in history], np.float64)
        y = np.log(np.maximum([h["means"][e] for h in history], 0.05))
        slope = 1.0
        if np.ptp(b) > 1e-6:
            slope = float(np.clip(np.polyfit(b, y, 1)[0], *SLOPE_RANGE))
        intercept = float(np.mean(y - slope * b))
        goal = (np.log(t) - intercept) / slope
        if len(history) == 1:
            goal = b[-1] + damping * (goal - b[-1])
        step = float(np.clip(goal - b[-1], -MAX_STEP, MAX_STEP))
        out[e] = float(np.clip(b[-1] + step, -limit, limit))
    return out


def earlier_calibration(run: Path) -> dict:
    """``run``'s ``calibration.json`` (``{}`` if none), checked to be what rlcreate writes."""
    from rlcreate.errors import UserError
    from rlcreate.safe_io import load_json

    if not (run / "calibration.json").is_file():
        return {}
    saved = load_json(run / "calibration.json")
    trained_with = saved.get("trained_element_bias") if isinstance(saved, dict) else "?"
    if trained_with is not None and not isinstance(trained_with, dict):
        raise UserError(
            f"{str(run / 'calibration.json')!r} is not what rlcreate writes (its trained_element_bias is "
            f"{trained_with!r}); delete the file to use the config.yaml's offsets"
        )
    return saved


def trained_element_bias(run: Path, recipe: Any) -> dict | None:
    """The offsets ``run`` trained with: an earlier fit's record (``calibration.json``), else the
    run's ``config.yaml`` (not yet calibrated)."""
    saved = earlier_calibration(run)
    return saved.get("trained_element_bias") if saved else recipe.env.kwargs.get("element_bias")


def write_calibration(run: Path, recipe: Any, fits: dict, trained_with: dict | None) -> Any:
    """Write the steered policy's fitted offsets (``fits["steered"]``) into ``run``'s config.yaml
    and every fit, with the offsets the run trained with, into ``calibration.json``; returns the
    calibrated recipe."""
    from rlcreate.runbox import write_text

    calibrated = with_element_bias(recipe, fits["steered"]["element_bias"])
    calibrated.dump(run / "config.yaml")  # eval, report and generate read the run's calibrated sampler
    write_text(run / "calibration.json", json.dumps({**fits, "trained_element_bias": trained_with}, indent=2))
    return calibrated


def calibrate_run(run: str | Path, levels: int = 192, rounds: int = 3) -> dict:
    """``rlcreate calibrate RUN``: fit a trained run's element-rate offsets (runs of the envs
    :func:`calibration_refusal` accepts), write them into the run (:func:`write_calibration`) and
    redraw its ``samples/`` with them. Returns the fit."""
    from rlcreate.errors import UserError
    from rlcreate.train.runner import read_run_recipe, restore

    run = Path(run)
    recipe = read_run_recipe(run)
    refusal = calibration_refusal(recipe)
    if refusal:
        raise UserError(
            f"{str(run)!r} cannot be calibrated: {refusal}; pass a run of the column LM "
            "(e.g. one trained from mario_tokens.yaml or mario_latent_choice.yaml)"
        )
    trained_with = trained_element_bias(run, recipe)
    # a demo run's start fit stays next to the new one
    fits = {k: v for k, v in earlier_calibration(run).items() if k != "trained_element_bias"}
    asm, model = restore(run)
    fits["steered"] = calibrate_element_bias(model, recipe, levels=levels, rounds=rounds)
    calibrated = write_calibration(run, recipe, fits, trained_with)
    from rlcreate.assemble import assemble

    asm = assemble(calibrated)
    asm.domain.finish_training(model, asm, run)  # samples/ again, from the calibrated sampler
    return fits["steered"]

"""Reward-hacking audit: does a proxy reward rise while the judge it stands for does not?

For each reward term that has a judge counterpart (the domain's ``counterparts``), the audit measures both
along a run's checkpoints: the *proxy* is the term's mean per-step value when the checkpoint's
policy builds levels in the environment with the training reward set (its archive state restored
from the checkpoint's ``reward_state.npz``); the *judge* is computed on the same levels. A pair is flagged

* ``diverged`` when the proxy rises by more than ``min_rise`` from the first to the last
  checkpoint while the judge falls by more than ``min_rise``;
* ``stalled`` when the proxy rises by more than ``min_rise`` but the judge rises by less than
  ``stall_ratio`` times the proxy's rise (on the judge's own scale, both in [0, 1]);
* ``ok`` otherwise (``insufficient`` with fewer than two checkpoints).

The numbers (both series, their changes and their Spearman rank correlation) are kept with the
verdict so a reader can judge the flag.

Rollouts are done per *mode*: ``stochastic`` (actions sampled from the policy, with a fixed seed)
and ``deterministic`` (the policy's mode), reported side by side; the first mode listed gives the
headline verdict. A collapsed deterministic policy can hide what the sampling policy does (and the
other way round), so both are shown by default.

Proxy/judge pairs can stay flat while the output is copied or collapsed, so every checkpoint also
gets **memorisation / collapse flags** (the domain's: :func:`rlcreate.levels.evaluate.level_flags`,
:func:`rlcreate.text.evaluate.text_flags`), raised from the
last checkpoint's samples whatever the pairs say:

* levels, memorisation: more than ``COPIED_WINDOWS_FLAG`` (0.5) of the 16-column windows copy a
  training window exactly (held-out SMB levels: 0.10);
* levels, collapse: every sample (at least 4) in one cell of the fixed leniency x linearity grid,
  or mean pairwise tile distance below ``PAIRWISE_FLAG`` (0.02; held-out 128-column corpus pieces:
  0.16);
* texts, memorisation: more than half the texts share a run of >= 8 words with the corpus;
* texts, collapse: self-BLEU above 50 or distinct-2 below 0.5 (32 corpus sentences: 8.5 and
  0.93; the same set with half its sentences replaced by one repeated sentence: 53 and 0.52).

Text runs pair the embedding novelty reward (``text_novelty``) with surface n-gram novelty against
the corpus, and the in-context fluency reward with fluency of the text read standalone under the
same LM (:mod:`rlcreate.text.judges` says why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.errors import UserError

__all__ = ["MODES", "flag_divergence", "audit_run", "checkpoints_of", "AuditError"]

MODES = ("stochastic", "deterministic")


class AuditError(UserError):
    """Bad audit settings; the message names the value and the fix."""


def flag_divergence(
    steps: Sequence[int],
    proxy: Sequence[float],
    judge: Sequence[float],
    min_rise: float = 0.02,
    stall_ratio: float = 0.25,
) -> dict:
    """Verdict on one proxy/judge pair measured at ``steps`` (see the module docstring)."""
    p, j = np.asarray(proxy, np.float64), np.asarray(judge, np.float64)
    if not (len(steps) == len(p) == len(j)):
        raise ValueError(
            f"steps, proxy and judge must have one value per checkpoint; got lengths {len(steps)}, {len(p)}, {len(j)}"
        )
    out: dict[str, Any] = {"steps": [int(s) for s in steps], "proxy": p.tolist(), "judge": j.tolist()}
    if len(p) < 2:
        return {**out, "verdict": "insufficient", "reason": "fewer than two checkpoints"}
    dp, dj = float(p[-1] - p[0]), float(j[-1] - j[0])
    from scipy.stats import spearmanr

    rho = float(spearmanr(p, j).statistic) if np.ptp(p) > 0 and np.ptp(j) > 0 else float("nan")
    out.update(proxy_change=dp, judge_change=dj, spearman=rho)
    if dp > min_rise and dj < -min_rise:
        return {**out, "verdict": "diverged", "reason": f"proxy rose by {dp:+.3f} while the judge fell by {dj:+.3f}"}
    if dp > min_rise and dj < stall_ratio * dp:
        return {
            **out,
            "verdict": "stalled",
            "reason": f"proxy rose by {dp:+.3f}; the judge moved only {dj:+.3f} (< {stall_ratio} x the rise)",
        }
    return {**out, "verdict": "ok", "reason": f"proxy {dp:+.3f}, judge {dj:+.3f}"}


def checkpoints_of(run: Path, files: tuple[str, ...] | None = None) -> list[tuple[int, Path, Path | None]]:
    """``(steps, checkpoint folder, reward-state file)`` of a run's complete checkpoints, oldest
    first (``checkpoints/step_<N>/``; half-written ones of a killed run are skipped), ending with the
    final ``model/`` when training finished after the last checkpoint. ``files``: what a complete
    folder holds (the run's ``trainer.checkpoint_files()``, as :func:`~rlcreate.train.runner.restore`
    asks; default the files every trainer writes)."""
    from rlcreate.train.checkpoint import CHECKPOINT_FILES, checkpoint_steps, latest_checkpoint, list_checkpoints

    run, files = Path(run), files or CHECKPOINT_FILES
    out: list[tuple[int, Path, Path | None]] = [
        (steps, folder, folder / "reward_state.npz") for steps, folder in list_checkpoints(run, files)
    ]
    found = latest_checkpoint(run, files)
    if found is not None and found[0] == run / "model":
        steps = checkpoint_steps(run / "model")
        if not out or steps > out[-1][0]:
            out.append((steps, run / "model", run / "model" / "reward_state.npz"))
    return out


def audit_run(
    run: str | Path,
    n_levels: int = 8,
    min_rise: float = 0.02,
    stall_ratio: float = 0.25,
    write: bool = True,
    modes: Sequence[str] = MODES,
    asm: Any = None,
) -> dict:
    """Audit a trained run along its checkpoints; writes ``RUN/audit.json``.

    ``n_levels``: samples (levels or texts) per checkpoint and mode. ``modes``: rollout modes,
    the first gives the headline verdict (see the module docstring). ``asm``: the run's assembly
    (rebuilt from its config.yaml by default; pass one to reuse a loaded LM)."""
    from rlcreate.train.runner import read_run_recipe, restore

    modes = list(modes)
    if not modes or any(m not in MODES for m in modes):
        raise AuditError(f"modes = {modes!r}: use one or both of {MODES}, e.g. --audit-modes stochastic")
    run = Path(run)
    if asm is None:
        from rlcreate.assemble import assemble

        asm = assemble(read_run_recipe(run))
    recipe, counterparts = asm.recipe, asm.domain.counterparts
    ckpts = checkpoints_of(run, asm.trainer.checkpoint_files())  # the folders restore() can load
    pairs = {
        term: counterparts[spec["reward"]] for term, spec in recipe.rewards.items() if spec["reward"] in counterparts
    }
    result: dict[str, Any] = {
        "run": str(run),
        "n_levels": n_levels,
        "checkpoints": [c[0] for c in ckpts],
        "modes": modes,
        "pairs": {},
        "flags": {},
        "flag_series": {},
        "notes": [],
    }
    if not ckpts:
        result["notes"].append("no checkpoints/step_<N>/ in the run: nothing to audit along training")
    if not pairs:
        result["notes"].append(f"no reward term has a judge counterpart (known: {sorted(counterparts)})")
    series: dict[str, dict[str, dict[str, list]]] = {m: {t: {"proxy": [], "judge": []} for t in pairs} for m in modes}
    judges_needed = sorted({j for j, _, _ in pairs.values()})
    skipped: dict[str, str] = {}
    for steps, folder, _ in ckpts:
        asm, model = restore(run, checkpoint=folder, asm=asm)  # the checkpoint's policy and reward state
        progress = steps / max(asm.trainer.budget(recipe), 1)
        for mode in modes:
            terms, judged, flags = asm.domain.audit_checkpoint(
                asm, model, progress, n_levels, mode == "deterministic", recipe.seed + 1, judges_needed
            )
            result["flag_series"].setdefault(mode, []).append({"steps": steps, **flags})
            result["flags"][mode] = flags  # the last checkpoint's flags stand
            for term, (judge, measure, _) in pairs.items():
                if "skipped" in judged[judge]:
                    skipped[term] = judged[judge]["skipped"]
                    continue
                series[mode][term]["proxy"].append(float(terms.get(term, float("nan"))))
                series[mode][term]["judge"].append(float(judged[judge][measure]))
    for term, (judge, measure, what) in pairs.items():
        if term in skipped:
            result["pairs"][term] = {
                "verdict": "skipped",
                "reason": skipped[term],
                "judge_name": f"{judge}.{measure}",  # as in every other pair ("judge" holds its series)
                "checks": what,
            }
            continue
        by_mode = {
            m: flag_divergence(
                [c[0] for c in ckpts], series[m][term]["proxy"], series[m][term]["judge"], min_rise, stall_ratio
            )
            for m in modes
        }
        result["pairs"][term] = {
            **by_mode[modes[0]],
            "mode": modes[0],
            "judge_name": f"{judge}.{measure}",
            "checks": what,
            "by_mode": by_mode,
        }
    for mode, flags in result["flags"].items():
        for kind in ("memorisation", "collapse"):
            if flags[kind]["flag"]:
                result["notes"].append(f"FLAG {kind} ({mode} rollouts, last checkpoint): {flags[kind]['reason']}")
    if write:
        from rlcreate.runbox import write_text

        write_text(run / "audit.json", json.dumps(result, indent=2))
    return result

"""Evaluation of runs: search baselines at equal budget, judges distinct from the training reward,
a reward-hacking audit along checkpoints, a quality-diversity summary and HTML reports.

Submodules import heavy dependencies lazily; import what you need, e.g.
``from rlcreate.evaluation.baselines import run_baseline``.
"""

from rlcreate.errors import UserError

__all__ = ["UnknownJudgeError", "baselines", "audit", "report", "html", "summary"]


class UnknownJudgeError(UserError):
    """A judge name the run's domain does not have; the message lists close names."""

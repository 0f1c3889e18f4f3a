"""Evaluation of runs: search baselines at equal budget, judges distinct from the training reward,
a reward-hacking audit along checkpoints, a quality-diversity summary and HTML reports.

Submodules import heavy dependencies lazily; import what you need, e.g.
``from rlcreate.evaluation.baselines import run_baseline``.
"""

__all__ = ["baselines", "text_baselines", "judges", "text_judges", "audit", "qd", "report"]

"""Evaluation of runs: search baselines at equal budget, judges distinct from the training reward,
a reward-hacking audit along checkpoints, a quality-diversity summary and HTML reports.

Submodules import heavy dependencies lazily; import what you need, e.g.
``from rlcreate.evaluation.baselines import run_baseline``.
"""

__all__ = ["baselines", "text_baselines", "judges", "text_judges", "audit", "qd", "report"]


def USER_ERRORS() -> tuple[type[BaseException], ...]:
    """The evaluation errors that mean bad user input (the CLI prints them as one ``error:`` line)."""
    from rlcreate.evaluation.audit import AuditError
    from rlcreate.evaluation.baselines import BaselineError
    from rlcreate.evaluation.judges import UnknownJudgeError
    from rlcreate.evaluation.qd import DescriptorError
    from rlcreate.evaluation.report import RunFolderError

    return BaselineError, UnknownJudgeError, DescriptorError, RunFolderError, AuditError

"""The levels domain (Super Mario Bros): its :class:`~rlcreate.domains.Domain` is
:data:`rlcreate.levels.domain.DOMAIN`; see the README's "Where things live" for its modules."""

__all__ = [
    "domain",
    "envs",
    "tiles",
    "corpus",
    "render",
    "metrics",
    "validity",
    "solver",
    "astar",
    "judges",
    "qd",
    "quality",
    "search",
    "samples",
    "evaluate",
    "cli",
]

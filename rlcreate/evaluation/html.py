"""Small HTML helpers shared by the report and the domains' report sections."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["esc", "fmt", "table", "plt"]


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(v: Any) -> str:
    """A cell value: numbers to 4 significant digits, NaN as a dash, text escaped."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return "—" if v != v else f"{v:.4g}"
    return esc(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plt():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot

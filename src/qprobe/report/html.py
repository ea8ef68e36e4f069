"""The HTML report: one self-contained file rendered from report.json by jinja2 templates.

No network (a Content-Security-Policy forbids every fetch), no script: inline CSS and inline
SVG charts drawn from the numbers in the report's views. The templates live in
``qprobe/report/templates`` (package data); the renderer only formats numbers.
"""

from __future__ import annotations

from typing import Any

import jinja2

from qprobe.report.cells import fmt, pct
from qprobe.report.document import Report


def _f(v: Any, spec: str) -> str:
    return fmt(None if v is None else float(v), spec)


def _pct(v: Any) -> str:
    return pct(None if v is None else float(v))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("qprobe.report", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False,
    )
    env.filters["f"] = _f
    env.filters["pct"] = _pct
    return env


def render_html(report: Report) -> str:
    """The report as one HTML page (from its JSON form, so a loaded report.json renders the same)."""
    return environment().get_template("report.html.j2").render(r=report.to_json())

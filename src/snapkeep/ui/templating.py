"""Rendering a page: one Jinja2 environment, autoescaped, with the context every page shares.

Every page gets the visitor (``who``: their principal, for showing what their role allows), the CSRF token
that each form and each htmx request must send back, and the navigation. Templates never decide what a user
may see: the services already gave them only what the user's scope holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from snapkeep.model.units import format_size
from snapkeep.services.logins import Visit
from snapkeep.ui.timeline import snapshot_drawing

NAV = (
    ("/", "Dashboard"),
    ("/volumes", "Volumes"),
    ("/vms", "VMs"),
    ("/tenants", "Tenants"),
    ("/networks", "Networks"),
    ("/snapshots", "Snapshots"),
    ("/profiles", "Profiles"),
    ("/jobs", "Jobs"),
    ("/audit", "Audit"),
    ("/tokens", "Tokens"),
    ("/users", "Users"),
)


def _when(value: datetime | None) -> str:
    """A time as operators read it in a table: UTC, to the second."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


environment = Environment(
    loader=PackageLoader("snapkeep.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["when"] = _when
environment.filters["size"] = format_size
environment.globals["snapshot_drawing"] = snapshot_drawing  # for the timeline.html macros


def render(request: Request, template: str, visit: Visit | None, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered for ``visit`` (None: a page for someone not logged in, such as the login form)."""
    html = environment.get_template(template).render(
        request=request,
        who=visit.who if visit else None,
        csrf=visit.csrf if visit else "",
        nav=NAV,
        path=request.url.path,
        slow_pool=request.app.state.services.pool.driver.slow,  # every page says so (SPEC §7)
        **context,
    )
    return HTMLResponse(html, status_code=status)

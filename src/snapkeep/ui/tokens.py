"""API tokens: the list, making one (its secret shown once, on the page that answers the form), and revoking
one after a confirmation page. The tokens service decides who may (operators and admins, at most their role,
within their subtree)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.model.cursors import Listing
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.errors import FORM_ERRORS
from snapkeep.ui.forms import ROLES, optional, role, text
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
TOKENS = Listing("tokens", (str, str))


@router.get("/tokens")
def token_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.tokens.page(visit.who, window(request, TOKENS))
    return render(request, "tokens/list.html", visit, tokens=page.items, next_url=next_url(request, TOKENS, page))


@router.get("/tokens/new")
def new_token_form(request: Request, visit: Visitor) -> Response:
    return render(request, "tokens/new.html", visit, roles=ROLES, form={}, error=None)


@router.post("/tokens/new")
def create_token(request: Request, visit: Visitor, svc: UiSvc, form: Form) -> Response:
    """The made token and its secret, on this answer alone: it is not kept, so no later page can show it.
    The answer is not stored by the browser (``Cache-Control: no-store``), so Back does not show it again."""
    try:
        token, secret = svc.tokens.issue(visit.who, text(form, "name"), role(form, "role"), optional(form, "tenant"))
    except FORM_ERRORS as exc:
        kept = {"name": form.get("name", ""), "role": form.get("role", ""), "tenant": form.get("tenant", "")}
        return render(request, "tokens/new.html", visit, status=exc.http_status, roles=ROLES, form=kept, error=exc)
    page = render(request, "tokens/created.html", visit, status=201, token=token, secret=secret)
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get("/tokens/{ref}/revoke")
def confirm_revoke(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    return render(request, "tokens/revoke.html", visit, token=svc.tokens.show(visit.who, ref))


@router.post("/tokens/{ref}/revoke")
def revoke_token(visit: Visitor, svc: UiSvc, ref: str) -> Response:
    svc.tokens.revoke(visit.who, ref)
    return RedirectResponse("/tokens", status_code=303)

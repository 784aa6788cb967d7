"""Users of the web UI: the list, one user (a new role, a new password), making one, and removing one after
a confirmation page. The users service decides who may do what (admins, within their subtree)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import InvalidInput, SnapkeepError
from snapkeep.model.cursors import Listing
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.errors import FORM_ERRORS
from snapkeep.ui.forms import ROLES, optional, role, text
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
USERS = Listing("users", (str, str))


@router.get("/users")
def user_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.users.page(visit.who, window(request, USERS))
    return render(request, "users/list.html", visit, users=page.items, next_url=next_url(request, USERS, page))


@router.get("/users/new")
def new_user_form(request: Request, visit: Visitor) -> Response:
    return render(request, "users/new.html", visit, roles=ROLES, form={}, error=None)


@router.post("/users/new")
def create_user(request: Request, visit: Visitor, svc: UiSvc, form: Form) -> Response:
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    try:
        if password != again:
            raise InvalidInput("the two passwords differ")
        user = svc.users.create(visit.who, text(form, "name"), password, role(form, "role"), optional(form, "tenant"))
    except FORM_ERRORS as exc:  # the form again, with what was typed (never the passwords) and why
        kept = {"name": form.get("name", ""), "role": form.get("role", ""), "tenant": form.get("tenant", "")}
        return render(request, "users/new.html", visit, status=exc.http_status, roles=ROLES, form=kept, error=exc)
    return RedirectResponse(f"/users/{user.id}", status_code=303)


def _detail(request: Request, visit: Visitor, svc: UiSvc, ref: str, error: SnapkeepError | None = None) -> Response:
    user = svc.users.show(visit.who, ref)
    status = error.http_status if error else 200
    return render(request, "users/detail.html", visit, status=status, user=user, roles=ROLES, error=error)


@router.get("/users/{ref}")
def user_detail(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    return _detail(request, visit, svc, ref)


@router.post("/users/{ref}/role")
def changerole(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    try:
        user = svc.users.update(visit.who, ref, role=role(form, "role"))
    except InvalidInput as exc:
        return _detail(request, visit, svc, ref, exc)
    return RedirectResponse(f"/users/{user.id}", status_code=303)


@router.post("/users/{ref}/password")
def change_password(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    try:
        if password != again:
            raise InvalidInput("the two passwords differ")
        user = svc.users.update(visit.who, ref, password=password)
    except InvalidInput as exc:
        return _detail(request, visit, svc, ref, exc)
    if user.name == visit.who.name:  # their own password: this session has ended too
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/users/{user.id}", status_code=303)


@router.get("/users/{ref}/delete")
def confirm_delete(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    return render(request, "users/delete.html", visit, user=svc.users.show(visit.who, ref))


@router.post("/users/{ref}/delete")
def delete_user(visit: Visitor, svc: UiSvc, ref: str) -> Response:
    svc.users.delete(visit.who, ref)
    return RedirectResponse("/users", status_code=303)

"""``/users``: the web UI's users of the caller's scope; admins make, change and remove them (see
:mod:`snapkeep.services.users`). A password goes in, never out: answers carry no hash."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Response, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])
USERS = Listing("users", (str, str))


@router.get("", response_model=list[UserPublic], responses=PAGED)
def list_users(svc: Svc, who: Caller, pages: Paged) -> Sequence[UserPublic]:
    """By name, a page at a time."""
    return pages.send(USERS, svc.users.page(who, pages.window(USERS)), UserPublic.of)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(svc: Svc, who: Caller, body: UserCreate) -> UserPublic:
    return UserPublic.of(svc.users.create(who, body.name, body.password, body.role, body.tenant))


@router.get("/{ref}", response_model=UserPublic)
def show_user(svc: Svc, who: Caller, ref: str) -> UserPublic:
    return UserPublic.of(svc.users.show(who, ref))


@router.patch("/{ref}", response_model=UserPublic)
def update_user(svc: Svc, who: Caller, ref: str, body: UserUpdate) -> UserPublic:
    """A new password and/or role; the user's sessions end (they log in again)."""
    return UserPublic.of(svc.users.update(who, ref, body.password, body.role))


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_user(svc: Svc, who: Caller, ref: str) -> Response:
    svc.users.delete(who, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

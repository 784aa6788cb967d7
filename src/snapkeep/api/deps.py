"""Request dependencies: the services of this process and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from snapkeep.services.container import Services
from snapkeep.services.tokens import Principal, Role


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def principal(
    svc: Annotated[Services, Depends(services)], authorization: Annotated[str | None, Header()] = None
) -> Principal:
    token = authorization.removeprefix("Bearer ").strip() if authorization else None
    return svc.tokens.authenticate(token)


def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    who.require(Role.OPERATOR)
    return who


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    who.require(Role.ADMIN)
    return who


Svc = Annotated[Services, Depends(services)]
Viewer = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
Admin = Annotated[Principal, Depends(admin)]

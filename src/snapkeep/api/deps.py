"""Request dependencies: the services of this process and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from snapkeep.model.principal import Principal
from snapkeep.services.container import Services

# RFC 6750/7235: "Authorization: Bearer <token>", the scheme in any case; a bare token is no credential.
bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer <token>`")


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def principal(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller; kept on the request so that a refusal further on is audited under its name."""
    who = svc.tokens.authenticate(credentials.credentials if credentials else None)
    request.state.principal = who
    return who


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]  # any authenticated caller; the services decide what it may do

"""``/tokens``: API tokens of the caller's scope (made with at most the caller's role; secret shown once)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Response, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])
TOKENS = Listing("tokens", (str, str))


@router.get("", response_model=list[TokenPublic], responses=PAGED)
def list_tokens(svc: Svc, who: Caller, pages: Paged) -> Sequence[TokenPublic]:
    """By name, a page at a time."""
    return pages.send(TOKENS, svc.tokens.page(who, pages.window(TOKENS)), TokenPublic.of)


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(svc: Svc, who: Caller, body: TokenCreate) -> TokenCreated:
    token, secret = svc.tokens.issue(who, body.name, body.role, body.tenant)
    return TokenCreated(**TokenPublic.of(token).model_dump(), secret=secret)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def revoke_token(svc: Svc, who: Caller, ref: str) -> Response:
    svc.tokens.revoke(who, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

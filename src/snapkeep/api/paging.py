"""Pages of the list routes: ``limit`` and an opaque ``cursor`` in; the rows out as a bare JSON list and,
when more follow, the next page's cursor in ``X-Next-Cursor`` and as ``Link: <url>; rel="next"``.

Why a bare list and headers rather than a wrapper object (``{"items": [...], "next_cursor": ...}``): every
answer a client already reads stays what it was, so scripts, the CLI's older releases and the tests keep
working, and a client that never asks for more than a page changes nothing at all; the cursor is metadata
of the answer, which is what headers carry (RFC 8288's ``Link`` is how GitHub's and GitLab's APIs page).
A client that wants everything follows ``X-Next-Cursor`` until it is absent.

A cursor is the listing's name and the key of the last row sent (:mod:`snapkeep.model.paging`), as
base64url JSON. It is opaque: clients pass it back unchanged. Anything else (garbage, a cursor of another
listing, a key of the wrong shape) is refused with ``invalid_input``. A cursor grants nothing: the rows
after it are read through the caller's scope like the first page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response

from snapkeep.model.cursors import Listing as Listing  # where the API modules take it from
from snapkeep.model.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, Window

T = TypeVar("T")
R = TypeVar("R")
NEXT_HEADER = "X-Next-Cursor"
MAX_CURSOR = 2048  # a key of two names of 128 characters, escaped, fits many times over

# For the route decorators: the 200 answer's headers, in the OpenAPI document.
PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One page of the listing; where more follow, the headers say how to get the next one.",
        "headers": {
            NEXT_HEADER: {
                "description": "The cursor of the next page (absent on the last page): pass it as `cursor`.",
                "schema": {"type": "string"},
            },
            "Link": {
                "description": 'The next page\'s URL, as `<url>; rel="next"` (absent on the last page).',
                "schema": {"type": "string"},
            },
        },
    }
}


class Pages:
    """A list route's paging: the window asked for, and the answer with the next page's headers."""

    def __init__(
        self,
        request: Request,
        response: Response,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="rows in this page at most"),
        cursor: str | None = Query(
            None,
            max_length=MAX_CURSOR,
            description=f"where to continue: the `{NEXT_HEADER}` of the previous page (opaque); none: the first page",
        ),
    ) -> None:
        self._request = request
        self._response = response
        self._limit = limit
        self._cursor = cursor

    def window(self, listing: Listing) -> Window:
        return Window(self._limit, None if self._cursor is None else listing.decode(self._cursor))

    def send(self, listing: Listing, page: Page[T], render: Callable[[T], R]) -> Sequence[R]:
        """The page's rows rendered, with the next page's cursor in the headers when there is one."""
        if page.next is not None:
            cursor = listing.encode(page.next)
            self._response.headers[NEXT_HEADER] = cursor
            self._response.headers["Link"] = f'<{self._request.url.include_query_params(cursor=cursor)}>; rel="next"'
        return [render(item) for item in page.items]


Paged = Annotated[Pages, Depends()]

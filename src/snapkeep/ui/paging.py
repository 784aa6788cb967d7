"""Paging of the pages' lists: the same keyset windows, limits and opaque cursors as the API, with a "Next
page" link.

A list page reads ``cursor`` from its query string (the API's cursor format, :mod:`snapkeep.model.cursors`,
so a bad one is refused the same way) and links to the next page with the other query parameters kept.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from snapkeep.errors import InvalidInput
from snapkeep.model.cursors import Listing
from snapkeep.model.paging import MAX_LIMIT, Page, Window

PAGE_ROWS = 50
MAX_CURSOR = 2048


def window(request: Request, listing: Listing) -> Window:
    """The page asked for: ``limit`` rows (default :data:`PAGE_ROWS`) after ``cursor`` (default: the start)."""
    cursor, limit = request.query_params.get("cursor"), request.query_params.get("limit") or str(PAGE_ROWS)
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}", limit=limit[:20])
    return Window(int(limit), listing.decode(cursor[:MAX_CURSOR]) if cursor else None)


def next_url(request: Request, listing: Listing, page: Page[Any]) -> str | None:
    """This page's address continuing after its last row; None on the last page."""
    if page.next is None:
        return None
    query = {key: value for key, value in request.query_params.items() if key != "cursor" and value}
    return f"{request.url.path}?{urlencode({**query, 'cursor': listing.encode(page.next)})}"

"""What a board page shows (its view, filters and slice of the ranking) as its address says it, and the
links that move through the pages: the state lives in the URL, so that a filtered page can be passed on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from app.runs.filters import RunFilter

# The board's two views: configurations (replicates grouped, the default) and single runs.
BOARD_VIEWS = ("groups", "runs")
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 100
# A page of up to this many rows may be asked for by its address; a page's rows are described one by one.
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class BoardPage:
    view: str = BOARD_VIEWS[0]
    filters: RunFilter = field(default_factory=RunFilter)
    offset: int = 0
    limit: int = DEFAULT_PAGE_SIZE

    def __post_init__(self):
        if self.view not in BOARD_VIEWS:  # an unknown view shows the default one, as it always has
            object.__setattr__(self, "view", BOARD_VIEWS[0])

    def query(self, **changes) -> str:
        """This page's query string (or with ``changes``, e.g. offset=0), leaving out what is default."""
        page = replace(self, **changes)
        pairs = [("view", page.view)] if page.view != BOARD_VIEWS[0] else []
        pairs += list(page.filters.given().items())
        if page.offset:
            pairs.append(("offset", page.offset))
        if page.limit != DEFAULT_PAGE_SIZE:
            pairs.append(("limit", page.limit))
        return urlencode(pairs)

    def pager(self, total: int) -> dict:
        """The position ("51–100 of 18,331") and the query strings of the first, previous and next pages
        (None where there is none)."""
        start = min(self.offset, total)
        end = min(self.offset + self.limit, total)
        last = (total - 1) // self.limit * self.limit if total else 0  # an address past the end goes back to it
        return {"start": start + 1 if end > start else start, "end": end, "total": total, "size": self.limit,
                "first": self.query(offset=0) if self.offset else None,
                "previous": self.query(offset=max(0, min(self.offset - self.limit, last))) if self.offset else None,
                "next": self.query(offset=self.offset + self.limit) if self.offset + self.limit < total else None}

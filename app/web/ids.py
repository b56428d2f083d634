"""Run and experiment ids as the pages receive them: in a path, or typed into the compare page's query."""

from __future__ import annotations

from app.store.models import MAX_ID


def valid_id(value: int) -> bool:
    # Beyond the database's 64-bit ids a lookup would fail: such an id is simply not found.
    return 1 <= value <= MAX_ID


def parse_ids(raw: list[str]) -> list[int]:
    """The valid ids in ``raw`` (each item may hold several, comma-separated), first occurrence first."""
    ids: list[int] = []
    for chunk in raw:
        for part in chunk.split(","):
            part = part.strip()
            if part.isdigit() and valid_id(int(part)) and int(part) not in ids:
                ids.append(int(part))
    return ids

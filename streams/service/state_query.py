"""State queries: one owner's rows of a partition and the `GET /relationships/{owner}` body."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from streams.engine.engine import NO_WATERMARK
from streams.engine.events import INTERACTION_TYPES, MAX_ID_CHARS
from streams.engine.row import Row
from streams.engine.rules import Rules

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SCHEMA_VERSION",
    "SORTS",
    "BadQuery",
    "Query",
    "as_of_ms",
    "contact_entry",
    "parse_query",
    "relationships_body",
]

RowKey = tuple[str, str]
Status = Literal["active", "dormant"]
Sort = Literal["strength", "last_interaction", "contact"]

SCHEMA_VERSION = 1
"""`schema_version` of schemas/relationships-response.v1.json."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STATUSES: tuple[Status, ...] = ("active", "dormant")
SORTS: tuple[Sort, ...] = ("strength", "last_interaction", "contact")
PARAMETERS = frozenset({"status", "limit", "sort"})


class BadQuery(ValueError):
    """A request the API refuses (400): a machine-readable code and the parameter at fault."""

    def __init__(self, code: str, parameter: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.parameter = parameter
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.code, "parameter": self.parameter, "message": self.message}


@dataclass(frozen=True, slots=True)
class Query:
    """A validated `GET /relationships/{owner}` request."""

    owner: str
    status: Status | None = None
    """Only contacts with this status, or all."""
    limit: int = DEFAULT_LIMIT
    """At most this many contacts (1..`MAX_LIMIT`)."""
    sort: Sort = "strength"
    """`strength`: dormant first, then the strongest; `last_interaction`: most recent first; `contact`: by id."""


def parse_query(owner: str, pairs: Iterable[tuple[str, str]]) -> Query:
    """Validate the owner id and the query string's `(name, value)` pairs, or raise `BadQuery`.

    >>> parse_query("ann", [("status", "dormant"), ("limit", "5")])
    Query(owner='ann', status='dormant', limit=5, sort='strength')
    >>> parse_query("ann", [("limit", "0")])
    Traceback (most recent call last):
    ...
    streams.service.state_query.BadQuery: limit must be an integer from 1 to 1000
    """
    if not 1 <= len(owner) <= MAX_ID_CHARS:
        raise BadQuery("invalid_owner", "owner", f"owner id must be 1 to {MAX_ID_CHARS} characters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise BadQuery("repeated_parameter", name, f"query parameter {name!r} given more than once")
        params[name] = value
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise BadQuery(
            "unknown_parameter",
            unknown[0],
            f"unknown query parameter {unknown[0]!r} (known: limit, sort, status)",
        )
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise BadQuery("invalid_parameter", "status", "status must be `active` or `dormant`")
    raw_limit = params.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadQuery("invalid_parameter", "limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    sort = params.get("sort", "strength")
    if sort not in SORTS:
        raise BadQuery(
            "invalid_parameter", "sort", "sort must be `strength`, `last_interaction` or `contact`"
        )
    return Query(owner, status, limit, sort)


def as_of_ms(watermark: int, now_ms: int) -> int:
    """The event time strengths are decayed to: the partition's watermark, or `now_ms` before it has one."""
    return now_ms if watermark == NO_WATERMARK else watermark


def contact_entry(contact: str, row: Row, rules: Rules, as_of: int) -> dict[str, Any]:
    """One element of `contacts`: the row with its strength decayed to `as_of` and its deadline."""
    established = rules.established(row)
    counts = row.counts
    return {
        "contact_id": contact,
        "status": "dormant" if row.dormant_since is not None else "active",
        "established": established,
        "strength": row.strength * rules.decay(max(0, as_of - row.last_at)),
        "last_interaction_at": row.last_at,
        "last_out_at": row.last_out_at,
        "last_in_at": row.last_in_at,
        "touches": row.touches,
        "typical_gap_ms": math.floor(rules.typical_gap(row.gaps)) if established else None,
        "threshold_ms": rules.threshold(row.gaps) if established else None,
        "deadline": None if row.dormant_since is not None else rules.deadline(row),
        "dormant_since": row.dormant_since,
        "counts": {
            "out": dict(zip(INTERACTION_TYPES, counts[0:3], strict=True)),
            "in": dict(zip(INTERACTION_TYPES, counts[3:6], strict=True)),
        },
    }


@runtime_checkable
class OwnerRows(Protocol):
    """Rows that read one owner's rows without a scan (`StoredRows`: a RocksDB key range)."""

    def owner_rows(self, owner: str) -> Iterator[tuple[str, Row]]:
        """The `(contact, row)` pairs of `owner`."""


def _owner_rows(rows: Mapping[RowKey, Row], owner: str) -> Iterator[tuple[str, Row]]:
    """The owner's `(contact, row)` pairs: a range read when the rows offer one, else a scan."""
    if isinstance(rows, OwnerRows):
        yield from rows.owner_rows(owner)
    else:
        for (row_owner, contact), row in rows.items():
            if row_owner == owner:
                yield contact, row


def relationships_body(
    query: Query, rows: Mapping[RowKey, Row], rules: Rules, as_of: int, partition: int
) -> dict[str, Any] | None:
    """The response body (schemas/relationships-response.v1.json), or None when the owner has no rows.

    Contacts are ordered by `query.sort`, ties by `contact_id` (code points),
    so a truncated answer is always the same prefix; `total` counts those
    matching the status filter, `count` those listed, and `truncated` says
    `total > count`.
    """
    matching: list[tuple[str, Row]] = []
    known = False
    for contact, row in _owner_rows(rows, query.owner):
        known = True
        status = "dormant" if row.dormant_since is not None else "active"
        if query.status is None or status == query.status:
            matching.append((contact, row))
    if not known:
        return None
    matching.sort(key=lambda item: item[0])  # stable: ties below stay in contact order
    if query.sort == "strength":
        matching.sort(
            key=lambda item: (
                item[1].dormant_since is None,
                -item[1].strength * rules.decay(max(0, as_of - item[1].last_at)),
            )
        )
    elif query.sort == "last_interaction":
        matching.sort(key=lambda item: -item[1].last_at)
    listed = matching[: query.limit]
    return {
        "owner_id": query.owner,
        "as_of": as_of,
        "count": len(listed),
        "total": len(matching),
        "truncated": len(matching) > len(listed),
        "partition": partition,
        "contacts": [contact_entry(contact, row, rules, as_of) for contact, row in listed],
        "schema_version": SCHEMA_VERSION,
    }

"""What each picture cost when it was paid for: the ledger's charges grouped by request hash.

A re-executed partition whose picture is already stored is a cache hit that costs nothing in its
run, so reports that list images read the cost from here, not from the newest materialization.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from asset_pipeline.ledger.money import to_usd
from asset_pipeline.ledger.schema import budget_entries

_CHUNK = 500  # keeps each IN (...) list well under every database's parameter limit


def charged_by_request(engine: Engine, request_hashes: Iterable[str]) -> dict[str, float]:
    """Request hash -> USD charged for it in total (hashes never charged are absent)."""
    wanted = sorted(set(request_hashes))
    charged: dict[str, float] = {}
    with engine.connect() as connection:
        for start in range(0, len(wanted), _CHUNK):
            rows = connection.execute(
                select(budget_entries.c.request_hash, func.sum(budget_entries.c.amount_micros))
                .where(budget_entries.c.kind == "charge", budget_entries.c.request_hash.in_(wanted[start:start + _CHUNK]))
                .group_by(budget_entries.c.request_hash)
            ).all()
            charged.update({request_hash: to_usd(total) for request_hash, total in rows})
    return charged

"""The money invariants of issue 11 as one reusable check, for every backend and provider.

`money_violations` reads the ledger (and optionally the image store and the provider's own
records) after a run and returns one line per broken invariant; a test asserts the list is empty,
so a failure names every problem at once. A new provider's tests call it with its fake's bill.

    1. every charge is finite, >= 0 and <= its reservation; spend never passes a cap (images and
       LLM-written prompts together: both book in the same table);
    2. the ledger books what the provider billed (and nothing it did not);
    3. no request is created twice at the provider while an earlier create may have succeeded;
    plus: every reservation is closed at most once, one prediction is never booked by two
    reservations, no reservation is left open (unless allowed), no NaN in the store's records.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from asset_pipeline.ledger.money import BudgetCaps, to_micros
from asset_pipeline.ledger.schema import budget_entries, prediction_journal

# A time-billed charge is rounded to whole micro-dollars on each side: allow that much per charge.
ROUNDING_MICROS_PER_CHARGE = 1


def money_violations(
    engine: Engine,
    *,
    caps: BudgetCaps,
    provider_bill_usd: float | None = None,
    creations_per_input: Mapping[Any, int] | None = None,
    store_dir: Path | None = None,
    allow_open: bool = False,
) -> list[str]:
    """Every broken money invariant, one line each (empty when all hold)."""
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(select(budget_entries).order_by(budget_entries.c.id)).mappings()]
        journal = [dict(row) for row in connection.execute(
            select(prediction_journal).order_by(prediction_journal.c.id)).mappings()]
    problems: list[str] = []
    reserved: dict[str, int] = {}
    closes: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        amount = row["amount_micros"]
        if not isinstance(amount, int) or isinstance(amount, bool):
            problems.append(f"entry {row['id']} ({row['kind']}) has a non-integer amount {amount!r}")
            continue
        if amount < 0:
            problems.append(f"entry {row['id']} ({row['kind']}) is negative: {amount} micro-dollars")
        if row["kind"] == "reservation":
            reserved[row["reservation_id"]] = amount
        else:
            closes[row["reservation_id"]].append(row)
    charges = [row for rows_ in closes.values() for row in rows_ if row["kind"] == "charge"]
    for reservation_id, closing in closes.items():
        if len(closing) > 1:
            problems.append(f"reservation {reservation_id} was closed {len(closing)} times")
        if reservation_id not in reserved:
            problems.append(f"reservation {reservation_id} was closed but never made")
    for row in charges:
        limit = reserved.get(row["reservation_id"])
        if limit is not None and row["amount_micros"] > limit:
            problems.append(f"charge {row['id']} of {row['amount_micros']} micro-dollars passes its reservation of {limit}")
    _check_caps(charges, caps, problems)
    booked_by: dict[str, set[str]] = defaultdict(set)
    for row in charges:
        if row["prediction_id"]:
            booked_by[row["prediction_id"]].add(row["reservation_id"])
    for row in journal:
        booked_by[row["prediction_id"]].add(row["reservation_id"])
    for prediction_id, reservations in booked_by.items():
        if len(reservations) > 1:
            problems.append(f"prediction {prediction_id} is booked by {len(reservations)} reservations")
    open_ = sorted(set(reserved) - set(closes))
    if open_ and not allow_open:
        problems.append(f"{len(open_)} reservation(s) left open: {', '.join(open_[:5])}")
    if provider_bill_usd is not None:
        booked = sum(row["amount_micros"] for row in charges)
        billed = to_micros(provider_bill_usd)
        if abs(booked - billed) > ROUNDING_MICROS_PER_CHARGE * max(1, len(charges)):
            problems.append(f"the ledger booked ${booked / 1e6:.6f} but the provider billed ${provider_bill_usd:.6f}")
    for fingerprint, count in (creations_per_input or {}).items():
        if count > 1:
            problems.append(f"one input was created {count} times at the provider ({str(fingerprint)[:16]})")
    if store_dir is not None:
        problems.extend(_store_problems(store_dir))
    return problems


def _check_caps(charges: list[dict], caps: BudgetCaps, problems: list[str]) -> None:
    total = sum(row["amount_micros"] for row in charges)
    if total > to_micros(caps.total_usd):
        problems.append(f"spend ${total / 1e6:.6f} passes the total cap ${caps.total_usd}")
    per_day: Counter[date] = Counter()
    per_run: Counter[str] = Counter()
    for row in charges:
        per_day[row["day"]] += row["amount_micros"]
        per_run[row["run_id"]] += row["amount_micros"]
    for day, spent in per_day.items():
        if spent > to_micros(caps.daily_usd):
            problems.append(f"spend ${spent / 1e6:.6f} on {day} passes the daily cap ${caps.daily_usd}")
    for run_id, spent in per_run.items():
        if spent > to_micros(caps.per_run_usd):
            problems.append(f"run {run_id} spent ${spent / 1e6:.6f}, past the per-run cap ${caps.per_run_usd}")


def _store_problems(store_dir: Path) -> list[str]:
    """NaN or Infinity in the store's request records (`requests/<hash>.json`) and in the written
    prompts (`prompts/<hash>.json`, issue 15), or a negative cost."""
    problems = []
    records = [path for name in ("requests", "prompts") for path in sorted((store_dir / name).glob("*.json"))]
    for record_path in records:
        try:
            record = json.loads(record_path.read_text(), parse_constant=lambda name: NOT_FINITE + name)
        except ValueError as exc:
            problems.append(f"{record_path.name}: unreadable ({exc})")
            continue
        for key, value in _leaves(record):
            if isinstance(value, str) and value.startswith(NOT_FINITE):
                problems.append(f"{record_path.name}: {key} is {value.removeprefix(NOT_FINITE)}")
        cost = record.get("cost_usd")
        if isinstance(cost, (int, float)) and cost < 0:
            problems.append(f"{record_path.name}: cost_usd is negative ({cost})")
    return problems


NOT_FINITE = "\x00not-finite:"  # what NaN / Infinity in a record parse to here


def _leaves(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _leaves(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _leaves(v, f"{key}[{i}]")]
    return [(key, value)]

"""Reserve before a provider call, charge after the image is stored, release on failure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select

from asset_pipeline.ledger.database import exclusive, history_rows
from asset_pipeline.ledger.money import BudgetCaps, CapViolation, Committed, first_violation, to_micros, to_usd
from asset_pipeline.ledger.schema import budget_entries, request_index


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    run_id: str
    partition_key: str
    request_hash: str
    model: str
    amount_usd: float

    def row_values(self) -> dict[str, str]:
        """The columns every ledger row about this reservation's image carries."""
        return {
            "reservation_id": self.reservation_id,
            "run_id": self.run_id,
            "partition_key": self.partition_key,
            "request_hash": self.request_hash,
            "model": self.model,
        }


class BudgetExhausted(Exception):
    """Raised by `reserve` when a cap would be passed; `violation` says which and by how much."""

    def __init__(self, violation: CapViolation):
        self.violation = violation
        super().__init__(str(violation))


@dataclass(frozen=True)
class BudgetStatus:
    caps: BudgetCaps
    spent_total_usd: float
    spent_today_usd: float
    reserved_usd: float
    open_reservations: int

    @property
    def remaining_total_usd(self) -> float:
        return max(0.0, self.caps.total_usd - self.spent_total_usd - self.reserved_usd)

    @property
    def remaining_today_usd(self) -> float:
        return max(0.0, min(self.caps.daily_usd - self.spent_today_usd - self.reserved_usd, self.remaining_total_usd))


def _today() -> date:
    return datetime.now(UTC).date()


class BudgetLedger:
    """The budget half of the ledger. Thread- and process-safe: every reservation is exclusive."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def reserve(
        self, *, run_id: str, partition_key: str, request_hash: str, model: str, amount_usd: float, caps: BudgetCaps
    ) -> Reservation:
        """Set `amount_usd` aside, or raise `BudgetExhausted` if any cap would be passed."""
        amount = to_micros(amount_usd)
        with exclusive(self.engine) as connection:
            violation = first_violation(self._committed(connection, run_id), caps, amount)
            if violation is not None:
                raise BudgetExhausted(violation)
            reservation = Reservation(str(uuid.uuid4()), run_id, partition_key, request_hash, model, amount_usd)
            self._insert(connection, "reservation", reservation, amount, "reserved before the provider call")
        return reservation

    def charge(self, reservation: Reservation, *, amount_usd: float, prediction_id: str | None, reason: str) -> bool:
        """Close `reservation` with what was really spent; False (and nothing written) if already closed."""
        return self._close(reservation, "charge", to_micros(amount_usd), reason, prediction_id)

    def release(self, reservation: Reservation, *, reason: str, prediction_id: str | None = None) -> bool:
        """Close `reservation` unspent; False (and nothing written) if already closed."""
        return self._close(reservation, "release", 0, reason, prediction_id)

    def _close(self, reservation: Reservation, kind: str, amount: int, reason: str, prediction_id: str | None) -> bool:
        with exclusive(self.engine) as connection:
            closed = connection.execute(
                select(func.count()).where(
                    budget_entries.c.reservation_id == reservation.reservation_id, budget_entries.c.kind != "reservation"
                )
            ).scalar_one()
            if closed:
                return False
            self._insert(connection, kind, reservation, amount, reason, prediction_id)
            return True

    def record_paid_request(self, reservation: Reservation, *, sha256: str, cost_usd: float) -> None:
        with exclusive(self.engine) as connection:
            connection.execute(
                insert(request_index).values(
                    request_hash=reservation.request_hash,
                    sha256=sha256,
                    partition_key=reservation.partition_key,
                    model=reservation.model,
                    cost_micros=to_micros(cost_usd),
                    created_at=datetime.now(UTC),
                )
            )

    def open_reservation(self, reservation_id: str) -> Reservation | None:
        """The reservation with this id if it is still open (neither charged nor released)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(budget_entries).where(budget_entries.c.reservation_id == reservation_id)
            ).mappings().all()
        if not rows or any(row["kind"] != "reservation" for row in rows):
            return None
        return _reservation(rows[0])

    def open_reservations_for(self, request_hash: str) -> list[Reservation]:
        with self.engine.connect() as connection:
            open_ = _open(connection)
            rows = connection.execute(select(open_).where(open_.c.request_hash == request_hash)).mappings().all()
        return [_reservation(row) for row in rows]

    def status(self, caps: BudgetCaps) -> BudgetStatus:
        with self.engine.connect() as connection:
            charges = _charges(connection)
            spent_total = connection.execute(select(func.coalesce(func.sum(charges.c.amount_micros), 0))).scalar_one()
            spent_today = connection.execute(
                select(func.coalesce(func.sum(charges.c.amount_micros), 0)).where(charges.c.day == _today())
            ).scalar_one()
            reserved, count = connection.execute(
                select(func.coalesce(func.sum(_open(connection).c.amount_micros), 0), func.count())
            ).one()
        return BudgetStatus(caps, to_usd(spent_total), to_usd(spent_today), to_usd(reserved), count)

    def entries(self, *, run_id: str | None = None) -> list[dict[str, Any]]:
        rows = history_rows(self.engine, budget_entries, run_id=run_id)
        return [
            {
                **{k: v for k, v in row.items() if k not in ("amount_micros", "day", "created_at")},
                "amount_usd": to_usd(row["amount_micros"]),
                "day": row["day"].isoformat(),
                "created_at": row["created_at"].isoformat(),
            }
            for row in rows
        ]

    def spend_by(self, column: str) -> dict[str, float]:
        """Charged USD grouped by `day` or `model`."""
        with self.engine.connect() as connection:
            charges = _charges(connection)
            key = charges.c[column]
            rows = connection.execute(
                select(key, func.sum(charges.c.amount_micros)).group_by(key).order_by(key)
            ).all()
        return {str(group): to_usd(total) for group, total in rows}

    def spent_by_run(self, run_id: str) -> float:
        with self.engine.connect() as connection:
            charges = _charges(connection)
            total = connection.execute(
                select(func.coalesce(func.sum(charges.c.amount_micros), 0)).where(charges.c.run_id == run_id)
            ).scalar_one()
        return to_usd(total)

    def _committed(self, connection: Connection, run_id: str) -> Committed:
        charges, open_ = _charges(connection), _open(connection)
        today = _today()

        def total(table, *conditions):  # type: ignore[no-untyped-def]
            query = select(func.coalesce(func.sum(table.c.amount_micros), 0))
            return int(connection.execute(query.where(*conditions) if conditions else query).scalar_one())

        return Committed(
            total=total(charges) + total(open_),
            today=total(charges, charges.c.day == today) + total(open_, open_.c.day == today),
            run=total(charges, charges.c.run_id == run_id) + total(open_, open_.c.run_id == run_id),
        )

    def _insert(
        self, connection: Connection, kind: str, reservation: Reservation, amount: int, reason: str,
        prediction_id: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        connection.execute(
            insert(budget_entries).values(
                **reservation.row_values(),
                kind=kind,
                prediction_id=prediction_id,
                amount_micros=amount,
                reason=reason,
                day=now.date(),
                created_at=now,
            )
        )


def _reservation(row: Any) -> Reservation:
    return Reservation(
        row["reservation_id"], row["run_id"], row["partition_key"], row["request_hash"], row["model"],
        to_usd(row["amount_micros"]),
    )


def _charges(connection: Connection):  # type: ignore[no-untyped-def]
    return select(budget_entries).where(budget_entries.c.kind == "charge").subquery()


def _open(connection: Connection):  # type: ignore[no-untyped-def]
    """Reservations with no charge or release row yet."""
    closed = select(budget_entries.c.reservation_id).where(budget_entries.c.kind != "reservation")
    return (
        select(budget_entries)
        .where(and_(budget_entries.c.kind == "reservation", budget_entries.c.reservation_id.not_in(closed)))
        .subquery()
    )

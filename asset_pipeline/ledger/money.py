"""Budget arithmetic, apart from any database: amounts in integer micro-dollars, cap checks.

Micro-dollars keep sums exact in SQLite (which has no decimal type) and PostgreSQL alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from asset_pipeline.errors import NonFiniteAmount

MICROS_PER_USD = 1_000_000
# No cap may exceed this: a typo such as 1e9 is refused rather than read as "no limit".
MAX_BUDGET_USD = 100_000.0


def to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def is_finite_number(value: object) -> bool:
    """True for an int or float that is finite as a float (10**400 is not: it overflows)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def checked_charge(amount_usd: float, *, reserved_usd: float) -> tuple[int, str | None]:
    """The micro-dollars to book for a charge against a reservation of `reserved_usd`, and a note
    when the amount had to be clamped into [0, reserved] (invariant 1: no charge passes its
    reservation, none is negative). Non-finite amounts are refused with `NonFiniteAmount`."""
    if not is_finite_number(amount_usd):
        raise NonFiniteAmount(f"refusing to book a charge of {amount_usd!r}: not a finite number of dollars",
                              amount=amount_usd)
    reserved = max(0, to_micros(reserved_usd)) if is_finite_number(reserved_usd) else 0
    if amount_usd < 0:
        return 0, f"clamped from ${amount_usd:.6f} to $0: a charge is never negative"
    if amount_usd * MICROS_PER_USD > reserved:
        return reserved, f"clamped from ${amount_usd:.6f} to the reservation's ${to_usd(reserved):.6f}"
    return to_micros(amount_usd), None


def to_usd(micros: int) -> float:
    return int(micros) / MICROS_PER_USD  # PostgreSQL sums come back as Decimal


@dataclass(frozen=True)
class BudgetCaps:
    """Spending limits in USD; each applies to charges plus open reservations."""

    total_usd: float
    daily_usd: float
    per_run_usd: float


@dataclass(frozen=True)
class Committed:
    """Charges plus open reservations, in micro-dollars, per scope."""

    total: int
    today: int
    run: int


@dataclass(frozen=True)
class CapViolation:
    cap: str
    limit_usd: float
    committed_usd: float
    requested_usd: float

    def __str__(self) -> str:
        return (
            f"budget exhausted: the {self.cap} cap is ${self.limit_usd:.4f}, ${self.committed_usd:.4f} is already "
            f"spent or reserved, and this image needs ${self.requested_usd:.4f}"
        )


def first_violation(committed: Committed, caps: BudgetCaps, amount: int) -> CapViolation | None:
    """The first cap that `amount` more would pass, checked total, daily, then per run."""
    for cap, used, limit in (
        ("total", committed.total, caps.total_usd),
        ("daily", committed.today, caps.daily_usd),
        ("per-run", committed.run, caps.per_run_usd),
    ):
        if used + amount > to_micros(limit):
            return CapViolation(cap, limit, to_usd(used), to_usd(amount))
    return None

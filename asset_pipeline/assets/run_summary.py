"""The block of lines an `images` run ends with: what was made, what failed and why, what it cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from asset_pipeline.ledger.budget_ledger import BudgetStatus


@dataclass
class RunTally:
    """Counts kept while the run's outcomes come in."""

    generated: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # failure kind -> partitions

    def add(self, *, error: str | None, failure_kind: str, cache_hit: bool, fallback: bool) -> None:
        if error is not None:
            self.failed[failure_kind or "error"] += 1
        elif cache_hit:
            self.cache_hits += 1
        else:
            self.generated += 1
            self.fallbacks += int(fallback)


def summary_lines(tally: RunTally, *, total: int, spent_run_usd: float | None,
                  status: BudgetStatus | None) -> list[str]:
    """Plain lines, no reprs; money only for a paid backend (`status` None otherwise)."""
    made = tally.generated + tally.cache_hits
    lines = [
        "run summary",
        f"  partitions     {total}",
        f"  materialized   {made} ({tally.generated} generated, {tally.cache_hits} cache hit(s)"
        + (f", {tally.fallbacks} fallback image(s))" if tally.fallbacks else ")"),
        f"  failed         {sum(tally.failed.values())}",
    ]
    lines += [f"    {kind:<22} {count}" for kind, count in sorted(tally.failed.items())]
    if status is None or spent_run_usd is None:
        lines.append("  spent          nothing (free backend)")
        return lines
    caps = status.caps
    lines += [
        f"  spent this run ${spent_run_usd:.4f} of the ${caps.per_run_usd:.2f} per-run cap",
        f"  spent today    ${status.spent_today_usd:.4f} of the ${caps.daily_usd:.2f} daily cap",
        f"  spent in total ${status.spent_total_usd:.4f} of the ${caps.total_usd:.2f} total cap"
        + (f" (${status.reserved_usd:.4f} still reserved)" if status.open_reservations else ""),
    ]
    return lines

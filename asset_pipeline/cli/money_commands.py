"""`asset-pipeline budget | ledger | estimate`: where the money stands, went, and would go."""

from __future__ import annotations

import json
from typing import Any

import click
import dagster as dg

from asset_pipeline.assets import image_partitions
from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.cli.context import CommandContext
from asset_pipeline.ledger.recorded_caps import CapsSource, current_caps
from asset_pipeline.partition_status import partition_statuses
from asset_pipeline.review_selection import rejected_partitions

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.command()
@json_option
def budget(as_json: bool) -> None:
    """Caps, what was spent today and in total, open reservations, and what remains."""
    context = CommandContext.from_environment()
    source = recorded_caps(context)
    status = context.ledger.status(source.caps)
    report = {
        "caps": {"total_usd": status.caps.total_usd, "daily_usd": status.caps.daily_usd,
                 "per_run_usd": status.caps.per_run_usd},
        "caps_source": source.origin,
        "spent_total_usd": status.spent_total_usd,
        "spent_today_usd": status.spent_today_usd,
        "reserved_usd": status.reserved_usd,
        "open_reservations": status.open_reservations,
        "remaining_total_usd": status.remaining_total_usd,
        "remaining_today_usd": status.remaining_today_usd,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    caps = status.caps
    click.echo(f"caps          total ${caps.total_usd:.2f}, daily ${caps.daily_usd:.2f}, per run ${caps.per_run_usd:.2f} "
               f"({source.describe()})")
    click.echo(f"spent         ${status.spent_total_usd:.4f} in total, ${status.spent_today_usd:.4f} today (UTC)")
    click.echo(f"reserved      ${status.reserved_usd:.4f} in {status.open_reservations} open reservation(s)")
    click.echo(f"remaining     ${status.remaining_total_usd:.4f} in total, ${status.remaining_today_usd:.4f} today")


@click.command()
@json_option
@click.option("--run", "run_id", help="Only this Dagster run's entries.")
def ledger(as_json: bool, run_id: str | None) -> None:
    """Every reservation, charge and release, oldest first."""
    entries = CommandContext.from_environment().ledger.entries(run_id=run_id)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        click.echo(
            f"{entry['created_at'][:19]}  {entry['kind']:<11} ${entry['amount_usd']:<9.4f} {entry['partition_key']:<40} "
            f"{entry['model']}  {entry['prediction_id'] or '-'}  {entry['reason']}"
        )
    click.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


@click.command()
@json_option
@click.option("--select", "selection", type=click.Choice(["missing", "failed", "rejected", "all"]), default="missing",
              show_default=True, help="Which partitions to price.")
def estimate(as_json: bool, selection: str) -> None:
    """Cost of generating the selected partitions now (cache hits excluded) against the remaining budget."""
    context = CommandContext.from_environment()
    generator, store, catalog = context.generator, context.store, context.catalog
    keys = _selected(context, selection)
    paid: dict[str, float] = {}
    cache_hits = 0
    for key in keys:
        request = generator.request_for(catalog.get(key))
        if store.contains(request.request_hash):
            cache_hits += 1
        else:
            paid[request.request_hash] = generator.active_backend.reservation_usd(request.model)
    cost = round(sum(paid.values()), 6)
    source = recorded_caps(context) if generator.active_backend.is_paid else None
    status = context.ledger.status(source.caps) if source else None
    remaining = min(status.remaining_today_usd, status.caps.per_run_usd) if status else float("inf")
    report: dict[str, Any] = {
        "selection": selection, "partitions": len(keys), "cache_hits": cache_hits, "to_generate": len(paid),
        "backend": generator.backend, "estimated_cost_usd": cost,
        "remaining_usd": None if status is None else remaining, "fits": cost <= remaining,
        "caps_source": source.origin if source else None,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{len(keys)} {selection} partition(s): {cache_hits} cache hit(s), {len(paid)} to generate "
               f"with {generator.backend}, estimated ${cost:.4f}")
    if status is None:
        click.echo("the backend is free: no budget is used")
    elif report["fits"]:
        click.echo(f"fits the remaining budget of ${remaining:.4f} (today and per run; caps {source.describe()})")
    else:
        click.echo(f"does NOT fit: only ${remaining:.4f} remains today and per run; the run would stop at the cap "
                   f"after about {int(remaining / (cost / len(paid)))} image(s)")


def recorded_caps(context: CommandContext) -> CapsSource:
    """The caps the latest run recorded in the ledger; this environment's only if none is recorded."""
    return current_caps(context.ledger.engine, fallback=context.generator.caps)


def _selected(context: CommandContext, selection: str) -> list[str]:
    ids = context.catalog.ids
    if selection == "all":
        return ids
    if selection == "rejected":  # the next takes of images rejected in review (priced with their new seed)
        with dg.DagsterInstance.get() as instance:
            return rejected_partitions(instance, context.catalog, context.ledger.engine)
    with dg.DagsterInstance.get() as instance:
        statuses = partition_statuses(instance, IMAGES, image_partitions(context.catalog))
    wanted = {"missing": {"missing", "failed"}, "failed": {"failed"}}[selection]
    return [key for key in ids if statuses.status_of(key) in wanted]

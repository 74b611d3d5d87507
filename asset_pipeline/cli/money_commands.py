"""`asset-pipeline budget | ledger | estimate`: where the money stands, went, and would go."""

from __future__ import annotations

import json
from typing import Any

import click
import dagster as dg

from asset_pipeline.assets import image_partitions
from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.cli.context import CommandContext
from asset_pipeline.cli.prompt_state import prompt_estimate
from asset_pipeline.cost_estimate import estimate_costs
from asset_pipeline.partition_status import partition_statuses
from asset_pipeline.review_selection import rejected_partitions

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.command()
@json_option
def budget(as_json: bool) -> None:
    """Caps, what was spent today and in total, open reservations, and what remains."""
    context = CommandContext.from_environment()
    remaining = context.ledger.remaining_budget()
    source, status = remaining.source, remaining.status
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
    keys = _selected(context, selection)
    specs, prompts = prompt_estimate(context, keys)  # briefs are priced with their final prompts
    priced = estimate_costs(keys, catalog=context.catalog, generator=context.generator, store=context.store, specs=specs)
    images_cost, cache_hits, to_generate = priced.total_usd, priced.cache_hits, priced.to_generate
    cost = round(images_cost + prompts["estimated_cost_usd"], 6)
    needs_budget = priced.paid or bool(prompts["to_write"] and prompts["expander"] == "llm")
    budget_left = context.ledger.remaining_budget() if needs_budget else None
    source = budget_left.source if budget_left else None
    status = budget_left.status if budget_left else None
    remaining = budget_left.next_run_usd if budget_left else float("inf")
    report: dict[str, Any] = {
        "selection": selection, "partitions": len(keys), "cache_hits": cache_hits, "to_generate": to_generate,
        "backend": context.generator.backend, "estimated_cost_usd": cost, "images_cost_usd": images_cost, "prompts": prompts,
        "remaining_usd": None if status is None else remaining, "fits": cost <= remaining,
        "caps_source": source.origin if source else None,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{len(keys)} {selection} partition(s): {cache_hits} cache hit(s), {to_generate} to generate "
               f"with {context.generator.backend}, estimated ${images_cost:.4f}")
    if prompts["briefs"]:
        click.echo(f"prompts: {prompts['briefs']} from briefs ({prompts['expander']}): {prompts['cache_hits']} cached, "
                   f"{prompts['to_write']} to write, estimated ${prompts['estimated_cost_usd']:.4f}; "
                   f"total ${cost:.4f}")
    if status is None:
        click.echo("the backend is free: no budget is used")
    elif report["fits"]:
        click.echo(f"fits the remaining budget of ${remaining:.4f} (today and per run; caps {source.describe()})")
    else:
        click.echo(f"does NOT fit: only ${remaining:.4f} remains today and per run; the run would stop at the cap "
                   f"after about {int(remaining / (cost / max(1, to_generate)))} image(s)")


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

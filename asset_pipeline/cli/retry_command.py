"""`asset-pipeline retry-failed`: re-run exactly the image partitions that are failed now."""

from __future__ import annotations

import json

import click
import dagster as dg

from asset_pipeline.cli.context import CommandContext
from asset_pipeline.cost_estimate import estimate_costs
from asset_pipeline.retry_selection import partitions_with_status, submit_backfill


@click.command("retry-failed")
@click.option("--dry-run", is_flag=True, help="Show what would be re-run and its cost; launch nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def retry_failed(dry_run: bool, as_json: bool) -> None:
    """Submit a backfill of the failed `images` partitions (the daemon of `make dev` runs it)."""
    context = CommandContext.from_environment()
    from asset_pipeline.definitions import build_defs

    with dg.DagsterInstance.get() as instance:
        failed = partitions_with_status(instance, context.catalog, {"failed", "fallback"})
        generator = context.generator
        costs = estimate_costs(failed, catalog=context.catalog, generator=generator, store=context.store)
        estimate = costs.total_usd
        open_for_s = 0.0
        if costs.paid:  # the circuit's state lives in the ledger
            open_for_s = round(context.ledger.circuit(provider=generator.provider).open_for_s, 1)
        backfill_id = None
        if failed and not dry_run and not open_for_s:
            backfill_id = submit_backfill(instance, build_defs(context.settings), failed, reason="retry-failed")
    report = {"failed": failed, "estimated_cost_usd": estimate, "dry_run": dry_run, "backfill_id": backfill_id,
              "circuit_open_for_s": open_for_s}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if failed and not dry_run and open_for_s:
        # Submitting now would only make every partition fail fast with "provider circuit open".
        raise click.ClickException(
            f"the {generator.provider} circuit breaker is open for another {open_for_s:g} s after "
            f"repeated provider failures; nothing was submitted. Run retry-failed again after that."
        )
    if as_json:
        return
    if not failed:
        click.echo("no failed image partitions")
        return
    click.echo(f"{len(failed)} failed partition(s), estimated ${estimate:.4f}: {', '.join(failed)}")
    if backfill_id:
        click.echo(f"submitted backfill {backfill_id}; the Dagster daemon (make dev) launches its run(s)")
    else:
        click.echo("dry run: nothing launched")
        if open_for_s:
            click.echo(f"note: the provider circuit breaker is open for another {open_for_s:g} s")

"""`asset-pipeline retry-failed`: re-run exactly the image partitions that are failed now."""

from __future__ import annotations

import json

import click
import dagster as dg

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.cli.context import CommandContext
from asset_pipeline.cost_estimate import estimate_costs
from asset_pipeline.retry_selection import partitions_with_status, rerun_assets, submit_backfill
from asset_pipeline.review_selection import rejected_partitions


@click.command("retry-failed")
@click.option("--dry-run", is_flag=True, help="Show what would be re-run and its cost; launch nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--rejected", is_flag=True,
              help="Re-render the partitions whose current image was rejected in review (a new take) instead.")
def retry_failed(dry_run: bool, as_json: bool, rejected: bool) -> None:
    """Submit a backfill of the failed `images` partitions (the daemon of `make dev` runs it)."""
    context = CommandContext.from_environment()
    from asset_pipeline.definitions import build_defs

    with dg.DagsterInstance.get() as instance:
        if rejected:  # the review loop's new takes (review_selection.py)
            failed = rejected_partitions(instance, context.catalog, context.ledger.engine)
        else:
            failed = partitions_with_status(instance, context.catalog, {"failed", "fallback"})
        generator = context.generator
        costs = estimate_costs(failed, catalog=context.catalog, generator=generator, store=context.store)
        estimate = costs.total_usd
        open_for_s = 0.0
        if costs.paid:  # the circuit's state lives in the ledger
            open_for_s = round(context.ledger.circuit(provider=generator.provider).open_for_s, 1)
            if rejected and estimate > 0 and context.ledger.remaining_budget().today_usd <= 0:
                raise click.ClickException(f"no budget remains today for {len(failed)} new take(s) "
                                           f"(estimated ${estimate:.4f}); nothing was submitted")
        backfill_id = None
        assets = [IMAGES] if rejected else rerun_assets(context.catalog)
        if failed and not dry_run and not open_for_s:
            backfill_id = submit_backfill(instance, build_defs(context.settings), failed,
                                          reason="retry-rejected" if rejected else "retry-failed", assets=assets)
    report = {"failed": failed, "estimated_cost_usd": estimate, "dry_run": dry_run, "backfill_id": backfill_id,
              "circuit_open_for_s": open_for_s, "selection": "rejected" if rejected else "failed",
              "assets": [asset.to_user_string() for asset in assets]}
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
    what = "rejected" if rejected else "failed"
    if not failed:
        click.echo(f"no {what} image partitions")
        return
    click.echo(f"{len(failed)} {what} partition(s), estimated ${estimate:.4f}: {', '.join(failed)}")
    if backfill_id:
        click.echo(f"submitted backfill {backfill_id} of {', '.join(a.to_user_string() for a in assets)}; "
                   "the Dagster daemon (make dev) launches its run(s)")
    else:
        click.echo("dry run: nothing launched")
        if open_for_s:
            click.echo(f"note: the provider circuit breaker is open for another {open_for_s:g} s")

"""`asset-pipeline review list | approve | reject`: the review loop from a terminal or a script.

The same service as the hub's review view (cli/review_service.py): verdicts go to the ledger
database against the partition's current image; a rejection asks for a new take, which
`review_sync_sensor` turns into a stale partition and `retry-failed --rejected` re-renders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
import dagster as dg

from asset_pipeline.catalog import load_catalog
from asset_pipeline.cli.context import CommandContext
from asset_pipeline.cli.review_service import STATES, ReviewService
from asset_pipeline.ledger.reviews import catalog_with_takes

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
sha_option = click.option("--sha256", "sha256", default=None,
                          help="The image reviewed (refused if it is no longer the partition's current image); "
                               "default: the current image.")


@contextmanager
def review_service() -> Iterator[ReviewService]:
    context = CommandContext.from_environment()
    engine = context.ledger.engine
    base = load_catalog(str(context.settings.catalog) if context.settings.catalog else None)
    with dg.DagsterInstance.get() as instance:  # takes read anew each time: a verdict changes them
        yield ReviewService(engine=engine, instance=lambda: instance, catalog=lambda: catalog_with_takes(base, engine))


@click.group()
def review() -> None:
    """Approve or reject generated images; a rejection re-renders the image as a new take."""


@review.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only partitions in this review state.")
@json_option
def list_reviews(state: str | None, as_json: bool) -> None:
    """Every generated image with its take, cost and review state."""
    with review_service() as service:
        report = service.items(state)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for item in report["items"]:
        due = f" -> take {item['next_take']} due" if item["rerender_due"] else ""
        note = f"  {item['note'][:60]}" if item["note"] else ""
        click.echo(f"{item['partition_key']:<40} {item['state']:<10} take {item['take']}{due}  "
                   f"{(item['sha256'] or '')[:12]}{note}")
    counts = report["counts"]
    click.echo(", ".join(f"{counts[name]} {name}" for name in STATES))


def _verdict(partition_key: str, sha256: str | None, decision: str, note: str, prompt_addition: str | None,
             as_json: bool) -> None:
    with review_service() as service:  # a refused verdict (ReviewError) is one `error:` line, exit 2
        saved = service.review(partition_key, sha256=sha256, decision=decision, note=note,
                               prompt_addition=prompt_addition)
    if as_json:
        click.echo(json.dumps(saved, indent=2))
        return
    line = f"{decision} {partition_key} ({saved['sha256'][:12]})"
    if decision == "rejected":
        line += f"; take {saved['next_take']} is due (retry-failed --rejected or the rejected_images_sensor renders it)"
    click.echo(line)


@review.command("approve")
@click.argument("partition_key")
@sha_option
@click.option("--note", default="", help="Optional note kept with the verdict.")
@json_option
def approve(partition_key: str, sha256: str | None, note: str, as_json: bool) -> None:
    """Approve the partition's current image."""
    _verdict(partition_key, sha256, "approved", note, None, as_json)


@review.command("reject")
@click.argument("partition_key")
@sha_option
@click.option("--note", default="", help="Why (kept with the verdict).")
@click.option("--prompt-addition", default=None,
              help="Text appended to the prompt of the next take, e.g. 'no text in the image'.")
@json_option
def reject(partition_key: str, sha256: str | None, note: str, prompt_addition: str | None, as_json: bool) -> None:
    """Reject the partition's current image: the next run renders a new take."""
    _verdict(partition_key, sha256, "rejected", note, prompt_addition, as_json)

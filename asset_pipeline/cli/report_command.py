"""`asset-pipeline report`: what the Dagster instance says was made, per partition."""

from __future__ import annotations

import json
from typing import Any

import click
import dagster as dg

from asset_pipeline.assets import image_partitions
from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.lineage import latest_event
from asset_pipeline.partition_status import PartitionStatuses, partition_statuses
from asset_pipeline.settings import load_settings
from asset_pipeline.storage.data_dir import check_data_dir

_COLUMNS = ("key", "path", "size", "cost_usd", "cache_hit")


def image_rows(instance: dg.DagsterInstance, keys: list[str], statuses: PartitionStatuses) -> list[dict[str, Any]]:
    """One row per partition key: its latest materialization's facts, or its status (failed, missing...)."""
    rows = []
    for key in keys:
        status = statuses.status_of(key)
        record = latest_event(instance, IMAGES, key, observation=False)
        materialization = record.asset_materialization if record else None
        if materialization is None or status != "materialized":
            rows.append({"key": key, "status": status})
            continue
        meta = {name: value.value for name, value in materialization.metadata.items()}
        rows.append(
            {
                "key": key,
                "status": "materialized",
                "path": meta.get("path"),
                "size": f"{meta.get('width')}x{meta.get('height')}",
                "cost_usd": meta.get("cost_usd"),
                "cache_hit": meta.get("cache_hit"),
                "run_id": record.run_id,
            }
        )
    return rows


def _keys_for(ids: list[str], partition_range: str | None, partitions: tuple[str, ...]) -> list[str]:
    if partitions:
        return list(partitions)
    if partition_range:
        first, _, last = partition_range.partition("...")
        if first not in ids or last not in ids:
            raise click.BadParameter(f"'{partition_range}' is not FIRST...LAST of two catalog ids", param_hint="--partition-range")
        return ids[ids.index(first) : ids.index(last) + 1]
    return ids


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column, "")
    if column == "cost_usd" and isinstance(value, (int, float)):
        return f"${value:.4f}"
    if column == "cache_hit":
        return "yes" if value else "no"
    return str(value)


@click.command()
@click.option("--partition-range", help="FIRST...LAST catalog ids (inclusive).")
@click.option("--partition", "partitions", multiple=True, help="One partition key; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of a table.")
def report(partition_range: str | None, partitions: tuple[str, ...], as_json: bool) -> None:
    """Show what was made for each image partition (default: the whole catalog)."""
    settings = load_settings()
    check_data_dir(settings.data_dir, write=False)
    catalog = settings.load_catalog()
    keys = _keys_for(catalog.ids, partition_range, partitions)
    with dg.DagsterInstance.get() as instance:
        rows = image_rows(instance, keys, partition_statuses(instance, IMAGES, image_partitions(catalog)))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    made = [row for row in rows if row["status"] == "materialized"]
    table = [[_cell(row, column) for column in _COLUMNS] for row in made]
    widths = [max([len(column)] + [len(line[i]) for line in table]) for i, column in enumerate(_COLUMNS)]
    click.echo("  ".join(column.ljust(width) for column, width in zip(_COLUMNS, widths)))
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))
    failed = [row["key"] for row in rows if row["status"] == "failed"]
    if failed:
        click.echo(f"\nFailed ({len(failed)}): {', '.join(failed)}")
    click.echo(
        f"\n{len(made)} of {len(rows)} image(s) materialized, "
        f"{sum(1 for row in made if row['cache_hit'])} cache hit(s), "
        f"total cost ${sum(row['cost_usd'] or 0 for row in made):.4f}."
    )
    click.echo(f"Images:        {settings.data_dir / 'images'}")
    click.echo(f"Manifest:      {settings.data_dir / 'manifest.json'}")
    click.echo(f"Contact sheet: {settings.data_dir / 'contact_sheet'}")
    click.echo("Dagster UI:    make dev, then http://127.0.0.1:3000 (asset 'images')")

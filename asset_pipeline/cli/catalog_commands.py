"""`asset-pipeline catalog ...`: validate a catalog file, pick a sample range."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

import click

from asset_pipeline.catalog import load_catalog
from asset_pipeline.errors import CatalogError
from asset_pipeline.settings import load_settings


def _catalog_path(path: str | None) -> str | None:
    if path is not None:
        return path
    return load_settings().catalog_file


@click.group()
def catalog() -> None:
    """Inspect the image catalog."""


@catalog.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def validate(path: str | None, as_json: bool) -> None:
    """Validate PATH (default: ASSET_PIPELINE_CATALOG or the bundled catalog); exit 1 on problems."""
    try:
        loaded = load_catalog(_catalog_path(path))
    except CatalogError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "problems": [asdict(p) for p in exc.problems]}, indent=2))
        else:
            click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    categories = Counter(spec.category for spec in loaded.images)
    if as_json:
        click.echo(json.dumps({"valid": True, "file": loaded.source, "images": len(loaded.images), "categories": categories}, indent=2))
    else:
        listing = ", ".join(f"{name} {count}" for name, count in sorted(categories.items()))
        click.echo(f"{loaded.source}: valid, {len(loaded.images)} images ({listing})")


@catalog.command("sample-range")
@click.option("--count", default=10, show_default=True, type=click.IntRange(1), help="How many images.")
def sample_range(count: int) -> None:
    """Print 'FIRST...LAST' covering the first COUNT catalog ids, for `--partition-range`."""
    try:
        ids = load_settings().load_catalog().ids
    except CatalogError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"{ids[0]}...{ids[min(count, len(ids)) - 1]}")

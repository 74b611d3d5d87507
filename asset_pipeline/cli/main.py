"""`asset-pipeline`: operator commands beside Dagster's own CLI. Every read command has `--json`."""

from __future__ import annotations

import click

from asset_pipeline.cli.catalog_commands import catalog
from asset_pipeline.cli.report_command import report


@click.group()
def cli() -> None:
    """Operate the asset_pipeline image catalog and its Dagster runs."""


cli.add_command(catalog)
cli.add_command(report)

if __name__ == "__main__":
    cli()

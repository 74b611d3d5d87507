"""`asset-pipeline`: operator commands beside Dagster's own CLI. Every read command has `--json`."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from asset_pipeline.cli.catalog_commands import catalog
from asset_pipeline.cli.hub_command import hub
from asset_pipeline.cli.money_commands import budget, estimate, ledger
from asset_pipeline.cli.prompts_command import prompts
from asset_pipeline.cli.report_command import report
from asset_pipeline.cli.retry_command import retry_failed
from asset_pipeline.cli.review_commands import review
from asset_pipeline.errors import AssetPipelineError


class _Group(click.Group):
    """Turns the pipeline's own errors into one clear line on stderr and exit status 2.

    A database error that escaped the commands' own checks (the ledger is opened and reported by
    name in `CommandContext.ledger`) is shown as its driver's first line, never with the URL.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AssetPipelineError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None
        except click.ClickException as exc:  # definitions.DefinitionsNotLoaded carries the pipeline's error
            error = getattr(exc, "error", None)
            if not isinstance(error, AssetPipelineError):
                raise
            click.echo(f"error: {error}", err=True)
            raise SystemExit(2) from None
        except SQLAlchemyError as exc:
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [exc.__class__.__name__])[0]
            click.echo(f"error: database: {reason}", err=True)
            raise SystemExit(2) from None


@click.group(cls=_Group)
def cli() -> None:
    """Operate the asset_pipeline image catalog and its Dagster runs."""


cli.add_command(catalog)
cli.add_command(report)
cli.add_command(budget)
cli.add_command(ledger)
cli.add_command(estimate)
cli.add_command(retry_failed)
cli.add_command(hub)
cli.add_command(prompts)
cli.add_command(review)

if __name__ == "__main__":
    cli()

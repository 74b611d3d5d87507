"""The review backend `asset-pipeline hub` serves its review view from: one Dagster instance and the
ledger, open for the hub's lifetime (hub/review_routes.py calls it in worker threads)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from asset_pipeline.catalog import Catalog, load_catalog
from asset_pipeline.cli.review_service import ReviewService
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.reviews import catalog_with_takes
from asset_pipeline.settings import PipelineSettings


@contextmanager
def review_backend(settings: PipelineSettings, *, echo: Callable[[str], None]) -> Iterator[ReviewService | None]:
    """The service, or None (with a line saying why) when there is no Dagster instance to read."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        echo("DAGSTER_HOME is not an instance directory: the review view is off")
        yield None
        return
    engine = ledger_engine(settings.ledger_url)
    path = str(settings.catalog) if settings.catalog else None

    def catalog() -> Catalog:
        return catalog_with_takes(load_catalog(path), engine)

    try:
        with dg.DagsterInstance.get() as instance:
            yield ReviewService(engine=engine, instance=lambda: instance, catalog=catalog)
    finally:
        engine.dispose()

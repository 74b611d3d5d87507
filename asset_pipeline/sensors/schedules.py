"""Schedules (stopped by default): missing and failed images within today's budget, and the summaries.

The cron expressions come from ASSET_PIPELINE_IMAGES_CRON and ASSET_PIPELINE_SUMMARIES_CRON.
Dagster's scheduler daemon creates runs, not backfills, so `images_within_budget` requests one
partition-range run per contiguous range of the images it chose, split into runs of at most
ASSET_PIPELINE_PARTITIONS_PER_RUN partitions as a backfill would be; each run's key, tags and the
tick log name its partitions, their number and the estimated cost. The budget it fills is the one
the runs are held to: the caps in force in the ledger (`LedgerResource.remaining_budget`).
"""

import dagster as dg

from asset_pipeline.assets.keys import ASSET_MANIFEST, CONTACT_SHEET, IMAGES, PROMPTS
from asset_pipeline.cost_estimate import estimate_costs
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.retry_selection import (
    describe_keys,
    partitions_with_status,
    range_run_requests,
    rerun_assets,
    within_budget,
)

summaries_job = dg.define_asset_job("refresh_summaries", selection=[ASSET_MANIFEST, CONTACT_SHEET])


def build_schedules(*, images_cron: str, summaries_cron: str,
                    partitions_per_run: int | None = None) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="images_within_budget",
        cron_schedule=images_cron,
        target=dg.AssetSelection.assets(PROMPTS, IMAGES),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Runs missing and failed images that fit the remaining budget: one partition-range run per "
        "contiguous range, tagged with its partitions and estimated cost.",
    )
    def images_within_budget(
        context: dg.ScheduleEvaluationContext, image_generator: ImageGenerator, image_store: ImageStore,
        catalog_file: CatalogFile, ledger: LedgerResource,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        catalog = catalog_file.load()
        wanted = partitions_with_status(context.instance, catalog, {"missing", "failed"})
        if not wanted:
            return dg.SkipReason("every image is materialized or being materialized; nothing to run")
        estimate = estimate_costs(wanted, catalog=catalog, generator=image_generator, store=image_store)
        costs = estimate.costs
        budget = ledger.remaining_budget().next_run_usd if estimate.paid else float("inf")
        chosen = within_budget(costs, budget)
        if not chosen:
            return dg.SkipReason(
                f"{len(wanted)} image(s) wanted ({describe_keys(wanted)}) but none fits the remaining budget "
                f"of ${budget:.4f}"
            )
        requests = range_run_requests({key: costs[key] for key in chosen}, catalog.ids, reason="schedule",
                                      partitions_per_run=partitions_per_run, assets=rerun_assets(catalog))
        left = len(wanted) - len(chosen)
        context.log.info(
            f"{len(chosen)} image(s) in {len(requests)} run(s), estimated ${sum(costs[k] for k in chosen):.4f}: "
            f"{describe_keys(chosen)}" + (f"; {left} more wanted but over the budget of ${budget:.4f}" if left else "")
        )
        return requests

    summaries = dg.ScheduleDefinition(
        name="refresh_summaries_schedule",
        job=summaries_job,
        cron_schedule=summaries_cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Rebuilds asset_manifest and contact_sheet.",
    )
    return [images_within_budget, summaries]

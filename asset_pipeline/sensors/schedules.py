"""Schedules (stopped by default): missing and failed images within today's budget, and the summaries.

The cron expressions come from ASSET_PIPELINE_IMAGES_CRON and ASSET_PIPELINE_SUMMARIES_CRON.
"""

import dagster as dg

from asset_pipeline.assets.keys import ASSET_MANIFEST, CONTACT_SHEET, IMAGES
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.retry_selection import RETRY_TAG, estimated_costs, images_subset, partitions_with_status, within_budget

summaries_job = dg.define_asset_job("refresh_summaries", selection=[ASSET_MANIFEST, CONTACT_SHEET])


def build_schedules(*, images_cron: str, summaries_cron: str) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="images_within_budget",
        cron_schedule=images_cron,
        target=dg.AssetSelection.assets(IMAGES),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Backfills missing and failed images that fit today's remaining budget.",
    )
    def images_within_budget(
        context: dg.ScheduleEvaluationContext, image_generator: ImageGenerator, image_store: ImageStore,
        catalog_file: CatalogFile,
    ) -> dg.RunRequest | dg.SkipReason:
        catalog = catalog_file.load()
        wanted = partitions_with_status(context.instance, catalog, {"missing", "failed"})
        if not wanted:
            return dg.SkipReason("every image is materialized")
        costs = estimated_costs(wanted, catalog=catalog, generator=image_generator, store=image_store)
        budget = (
            min(image_generator.ledger.status(image_generator.caps).remaining_today_usd, image_generator.budget_per_run_usd)
            if image_generator.active_backend.is_paid else float("inf")
        )
        chosen = within_budget(costs, budget)
        if not chosen:
            return dg.SkipReason(f"{len(wanted)} image(s) wanted but none fits today's remaining budget")
        subset = images_subset(chosen, context.repository_def.asset_graph)
        return dg.RunRequest.for_asset_graph_subset(subset, tags={RETRY_TAG: "schedule"})

    summaries = dg.ScheduleDefinition(
        name="refresh_summaries_schedule",
        job=summaries_job,
        cron_schedule=summaries_cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Rebuilds asset_manifest and contact_sheet.",
    )
    return [images_within_budget, summaries]

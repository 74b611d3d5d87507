"""`images`: one partition per catalog entry; a run over many partitions generates them concurrently.

Written as a generator with `output_required=False`: it logs one `AssetMaterialization` per
stored image as soon as it is stored (plus that partition's check results) and yields no output,
so Dagster does not log a second materialization per partition at the end of the step. Failed
partitions are collected and raised at the end, so finished partitions show as materialized and
the rest as failed ("re-execute failed" and "backfill failed and missing" then pick them up).
"""

from collections.abc import Iterator

import dagster as dg

from asset_pipeline.assets.image_checks import image_check_specs
from asset_pipeline.assets.keys import IMAGE_CATALOG, IMAGES
from asset_pipeline.assets.lineage import (
    check_target,
    event_data_version,
    latest_event,
    observation_tags,
    provenance_tags,
)
from asset_pipeline.assets.partition_runner import ImageOutcome, produce_image, raise_for_failures, run_concurrently
from asset_pipeline.resources.catalog_file import CatalogFile
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.resources.image_store import ImageStore

IMAGES_CODE_VERSION = "1"


def build_images(partitions_def: dg.StaticPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=IMAGES,
        partitions_def=partitions_def,
        deps=[IMAGE_CATALOG],
        backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        check_specs=image_check_specs(partitions_def),
        code_version=IMAGES_CODE_VERSION,
        kinds={"png"},
        description="One generated PNG per catalog entry, stored in the image store.",
    )
    def images(
        context: dg.AssetExecutionContext,
        image_generator: ImageGenerator,
        image_store: ImageStore,
        catalog_file: CatalogFile,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation | dg.Output]:
        catalog = catalog_file.load()
        keys = context.partition_keys
        context.log.info(
            f"{len(keys)} partition(s), backend {image_generator.backend}, "
            f"up to {image_generator.max_concurrency} at once"
        )
        failures: dict[str, str] = {}

        def work(key: str) -> ImageOutcome:
            return produce_image(key, catalog=catalog, generator=image_generator, store=image_store)

        for outcome in run_concurrently(keys, work, max_concurrency=image_generator.max_concurrency):
            if outcome.error is not None:
                failures[outcome.partition_key] = outcome.error
                context.log.error(f"partition {outcome.partition_key} failed: {outcome.error}")
                continue
            yield from _log_outcome(context, outcome)

        # Check results were logged per partition above; Dagster still expects each selected check's
        # output once per step, so close them here (they carry no value and log nothing more).
        selected_checks = context.selected_asset_check_keys
        for output_name, check_spec in context.assets_def.check_specs_by_output_name.items():
            if check_spec.key in selected_checks:
                yield dg.Output(None, output_name=output_name)

        raise_for_failures(failures, total=len(keys))

    return images


def _log_outcome(
    context: dg.AssetExecutionContext, outcome: ImageOutcome
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation]:
    assert outcome.stored is not None and outcome.spec is not None and outcome.request is not None
    key, spec, stored = outcome.partition_key, outcome.spec, outcome.stored
    instance = context.instance

    observed = latest_event(instance, IMAGE_CATALOG, key, observation=True)
    if event_data_version(observed) != spec.spec_hash:
        yield dg.AssetObservation(
            asset_key=IMAGE_CATALOG, partition=key, tags=observation_tags(spec.spec_hash, observed_by=context.run.run_id)
        )
        observed = latest_event(instance, IMAGE_CATALOG, key, observation=True)
    assert observed is not None

    record = stored.record
    metadata: dict[str, object] = {
        "path": dg.MetadataValue.path(str(stored.path)),
        "sha256": stored.sha256,
        "width": spec.width,
        "height": spec.height,
        "backend": record.get("backend", outcome.request.backend),
        "model": record.get("model", outcome.request.model),
        "seed": spec.seed,
        "request_hash": stored.request_hash,
        "cost_usd": dg.MetadataValue.float(outcome.cost_usd),
        "cache_hit": outcome.cache_hit,
        "attempts": outcome.attempts,
        "duration_s": dg.MetadataValue.float(round(outcome.duration_s, 4)),
        "fallback": bool(record.get("fallback", False)),
        "category": spec.category,
        "spec_hash": spec.spec_hash,
        "preview": dg.MetadataValue.md(outcome.preview or ""),
    }
    prediction_id = outcome.prediction_id or record.get("prediction_id")
    if prediction_id:
        metadata["prediction_id"] = prediction_id
    yield dg.AssetMaterialization(
        asset_key=IMAGES,
        partition=key,
        metadata=metadata,
        tags=provenance_tags(
            code_version=IMAGES_CODE_VERSION,
            data_version=stored.sha256,
            inputs={IMAGE_CATALOG: (spec.spec_hash, observed.storage_id)},
        ),
    )

    target = check_target(latest_event(instance, IMAGES, key, observation=False))
    for check in outcome.checks:
        yield dg.AssetCheckEvaluation(
            asset_key=IMAGES,
            check_name=check.name,
            passed=check.passed,
            partition=key,
            description=check.description,
            metadata=check.metadata,
            target_materialization_data=target,
        )

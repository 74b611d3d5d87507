"""The `prompts` asset in Dagster: one range run writes prompts then renders images; a style edit
makes every brief's prompt stale and a brief edit exactly one (Dagster's stale resolver); an LLM
answer that did not change leaves the image fresh; images alone use the stored prompts; the LLM
key never reaches the event log."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from asset_pipeline.assets.image_prompts import NO_PROMPT_YET
from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline_testing.briefs import LLM_KEY, PRICE, STYLE, brief_entries, write_brief_catalog
from asset_pipeline_testing.helpers import materialize, pipeline_defs
from asset_pipeline_testing.money_invariants import money_violations

KEYS = [f"brief-{i:03d}" for i in range(4)] + ["written-000"]


def run_both(defs: dg.Definitions, instance: dg.DagsterInstance, first: str = KEYS[0], last: str = KEYS[-1]):
    return dg.materialize(
        list(defs.assets or []), selection=[PROMPTS, IMAGES], instance=instance, resources=defs.resources,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def statuses(defs, instance, key) -> dict[str, StaleStatus]:
    resolver = get_stale_status_resolver(instance, list(defs.assets or []))
    return {partition: resolver.get_status(key, partition) for partition in KEYS}


def observe(defs, instance) -> None:
    assert defs.resolve_job_def("observe_image_catalog").execute_in_process(instance=instance).success


def metadata(result, key) -> dict[str, dict]:
    return {e.materialization.partition: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if e.materialization.asset_key == key}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_brief_catalog(tmp_path / "briefs.yaml")


def test_one_range_run_writes_prompts_then_renders_images(catalog: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog, data_dir)
    result = run_both(defs, instance)
    assert result.success
    prompts, images = metadata(result, PROMPTS), metadata(result, IMAGES)
    assert set(prompts) == set(images) == set(KEYS)
    assert prompts["brief-001"]["prompt"] == ("grandmother passing a recipe book number 1, Warm watercolour palette, "
                                              "Soft morning light, 50mm lens, shallow depth of field")
    assert prompts["brief-001"]["negative_prompt"] == "text, logos" and prompts["brief-001"]["source"] == "template"
    assert prompts["written-000"]["prompt"] == "a written icon 0" and prompts["written-000"]["source"] == "written"
    assert prompts["brief-001"]["diff"] == "first version"
    # The image renders the stored prompt: its spec hash is the prompt's data version.
    records = instance.fetch_materializations(PROMPTS, limit=10).records
    versions = {r.partition_key: r.asset_materialization.tags["dagster/data_version"] for r in records}
    assert all(images[key]["spec_hash"] == versions[key] for key in KEYS)
    assert set(statuses(defs, instance, IMAGES).values()) == {StaleStatus.FRESH}


def test_style_edit_stales_every_brief_prompt_and_a_brief_edit_exactly_one(catalog: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog, data_dir)
    observe(defs, instance)
    assert run_both(defs, instance).success
    assert set(statuses(defs, instance, PROMPTS).values()) == {StaleStatus.FRESH}

    write_brief_catalog(catalog, brief_entries(), style={**STYLE, "guide": "Cool ink drawing. Night light."})
    observe(defs, instance)
    prompts = statuses(defs, instance, PROMPTS)
    assert prompts.pop("written-000") == StaleStatus.FRESH
    assert set(prompts.values()) == {StaleStatus.STALE}
    assert set(statuses(defs, instance, IMAGES).values()) == {StaleStatus.FRESH}  # not re-written yet

    result = materialize(defs, instance, selection="prompts", first=KEYS[0], last=KEYS[-1])
    assert result.success
    assert "Cool ink drawing" in metadata(result, PROMPTS)["brief-000"]["diff"]
    images = statuses(defs, instance, IMAGES)
    assert images.pop("written-000") == StaleStatus.FRESH and set(images.values()) == {StaleStatus.STALE}
    assert run_both(defs, instance).success
    assert set(statuses(defs, instance, IMAGES).values()) == {StaleStatus.FRESH}

    entries = brief_entries()
    entries[2]["brief"] = "grandfather reading a will by the window"
    write_brief_catalog(catalog, entries, style={**STYLE, "guide": "Cool ink drawing. Night light."})
    observe(defs, instance)
    prompts = statuses(defs, instance, PROMPTS)
    assert prompts.pop("brief-002") == StaleStatus.STALE and set(prompts.values()) == {StaleStatus.FRESH}


def test_images_alone_use_stored_prompts_and_need_one_for_a_brief(catalog: Path, data_dir: Path, instance) -> None:
    defs = pipeline_defs(catalog, data_dir)
    result = materialize(defs, instance, first="brief-003", last="written-000")
    assert not result.success
    assert set(metadata(result, IMAGES)) == {"written-000"}  # its prompts partition is logged on the way
    assert set(metadata(result, PROMPTS)) == {"written-000"}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert NO_PROMPT_YET in failure.step_failure_data.error.message
    assert materialize(defs, instance, selection="prompts", partition="brief-003").success
    assert materialize(defs, instance, partition="brief-003").success


def test_an_unchanged_llm_answer_leaves_the_image_fresh(catalog: Path, data_dir: Path, instance, fake_openai) -> None:
    defs = pipeline_defs(catalog, data_dir, prompts="llm")
    result = run_both(defs, instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    answered = fake_openai.answered
    assert answered == 4  # the written entry needs no LLM
    prompts = metadata(result, PROMPTS)
    assert prompts["brief-000"]["source"] == "llm" and prompts["brief-000"]["cost_usd"] > 0

    # Same style, same briefs: every prompt is a cache hit and costs nothing.
    again = materialize(defs, instance, selection="prompts", first=KEYS[0], last=KEYS[-1])
    assert again.success and fake_openai.answered == answered
    assert {m["cache_hit"] for k, m in metadata(again, PROMPTS).items() if k != "written-000"} == {True}

    # A style edit the LLM's answer does not reflect: prompts stale, re-asked, same text, images fresh.
    write_brief_catalog(catalog, brief_entries(), style={**STYLE, "avoid": "text, logos, frames"})
    observe(defs, instance)
    assert statuses(defs, instance, PROMPTS)["brief-000"] == StaleStatus.STALE
    result = materialize(defs, instance, selection="prompts", first=KEYS[0], last=KEYS[-1])
    assert result.success and fake_openai.answered == answered + 4
    assert metadata(result, PROMPTS)["brief-000"]["diff"] == "unchanged"
    assert set(statuses(defs, instance, IMAGES).values()) == {StaleStatus.FRESH}

    generator = defs.resources["image_generator"]
    assert money_violations(generator.ledger.engine, caps=generator.caps, provider_bill_usd=fake_openai.bill_usd(*PRICE)) == []
    logs = "\n".join(str(entry) for entry in instance.all_logs(result.run_id))
    assert LLM_KEY not in logs and LLM_KEY not in str(instance.get_run_by_id(result.run_id))


def test_a_refused_prompt_fails_only_its_image_and_never_renders_the_older_prompt(
    catalog: Path, data_dir: Path, instance, fake_openai
) -> None:
    defs = pipeline_defs(catalog, data_dir, prompts="llm")
    assert run_both(defs, instance).success
    images_before = set((data_dir / "objects").rglob("*.png"))

    # brief-001 is edited and the LLM refuses the new brief: the other images go on in the same run,
    # and brief-001's image is not rendered from its older (now stale) stored prompt.
    entries = brief_entries()
    entries[1]["brief"] = "grandmother passing a recipe book, refused"
    fake_openai.brief_faults["refused"] = "refusal"
    write_brief_catalog(catalog, entries)
    result = run_both(defs, instance)
    assert not result.success
    assert set(metadata(result, PROMPTS)) == set(KEYS) - {"brief-001"}
    assert set(metadata(result, IMAGES)) == set(KEYS) - {"brief-001"}  # cache hits, the step ran
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert failure.step_key == "images" and "brief-001: its latest prompt failed (the LLM refused" in message
    assert set((data_dir / "objects").rglob("*.png")) == images_before  # nothing new rendered

    # Re-executing the failed images (a new run with only the images step) does not fall back either.
    again = materialize(defs, instance, first="brief-001", last="brief-001")
    assert not again.success
    assert "its latest prompt failed" in next(e for e in again.all_events if e.is_step_failure).step_failure_data.error.message
    assert set((data_dir / "objects").rglob("*.png")) == images_before

    # A prompts-only run that cannot write it fails, so the UI shows the partition as failed.
    assert not materialize(defs, instance, selection="prompts", first="brief-001", last="brief-001").success

    # Once the LLM answers, the same run selection writes the prompt and renders the new image.
    fake_openai.brief_faults.clear()
    assert run_both(defs, instance).success
    assert len(set((data_dir / "objects").rglob("*.png"))) == len(images_before) + 1

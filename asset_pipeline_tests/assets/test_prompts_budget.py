"""One set of caps covers prompts and images: a range run over both assets, the LLM through the fake
OpenAI server and Replicate through the fake Replicate server, stops at the per-run cap with both
kinds of charges in the ledger, and the ledger equals the two providers' bills together."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline_testing.briefs import LLM_KEY, PRICE, write_brief_catalog
from asset_pipeline_testing.helpers import pipeline_defs
from asset_pipeline_testing.money_invariants import money_violations


def test_prompts_and_images_share_the_per_run_cap(fake_replicate, fake_openai, tmp_path: Path, data_dir: Path,
                                                  instance) -> None:
    entries = [{"id": f"b-{i}", "category": "hero", "brief": f"a family house number {i}", "width": 1344,
                "height": 768, "seed": i} for i in range(6)]
    catalog = write_brief_catalog(tmp_path / "c.yaml", entries)
    defs = pipeline_defs(catalog, data_dir, backend="replicate", prompts="llm", budget_per_run_usd=0.012,
                         max_concurrency=2, prompts_max_concurrency=1)
    result = dg.materialize(
        list(defs.assets or []), selection=[PROMPTS, IMAGES], instance=instance, resources=defs.resources,
        tags={"dagster/asset_partition_range_start": "b-0", "dagster/asset_partition_range_end": "b-5"},
        raise_on_error=False,
    )
    assert not result.success  # the images step stopped at the cap
    kinds = {e.materialization.asset_key: 0 for e in result.get_asset_materialization_events()}
    for event in result.get_asset_materialization_events():
        kinds[event.materialization.asset_key] += 1
    assert kinds[PROMPTS] == 6 and 1 <= kinds[IMAGES] < 6

    generator = defs.resources["image_generator"]
    charges = [e for e in generator.ledger.entries() if e["kind"] == "charge"]
    llm = [e for e in charges if e["model"].startswith("llm:")]
    images = [e for e in charges if e["model"] == "black-forest-labs/flux-schnell"]
    assert len(llm) == 6 and len(images) == kinds[IMAGES] == fake_replicate.created_total
    spent = sum(e["amount_usd"] for e in charges)
    assert spent <= 0.012 and spent + 0.003 > 0.012 - 0.0028  # stopped because the next one would not fit
    bill = fake_replicate.bill_usd + fake_openai.bill_usd(*PRICE)
    assert sum(e["amount_usd"] for e in llm) == pytest.approx(fake_openai.bill_usd(*PRICE), abs=1e-6)
    assert money_violations(generator.ledger.engine, caps=generator.caps, provider_bill_usd=bill) == []
    assert LLM_KEY not in "\n".join(str(entry) for entry in instance.all_logs(result.run_id))

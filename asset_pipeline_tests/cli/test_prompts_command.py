"""`asset-pipeline prompts show | diff` and `estimate` with briefs, through the real console script:
after an LLM-written run, a style edit shows which prompts need an LLM call (priced, nothing sent),
and once the prompts are re-written, the diff of old vs new before any image is re-rendered."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline_testing.briefs import LLM_KEY, STYLE, brief_entries, llm_environment, write_brief_catalog
from asset_pipeline_testing.helpers import materialize, pipeline_defs


@pytest.fixture
def prompts_env(fake_openai, cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    catalog = write_brief_catalog(tmp_path / "briefs.yaml")
    env = {**cli_env, **llm_environment(fake_openai.v1), "ASSET_PIPELINE_CATALOG": str(catalog)}
    defs = pipeline_defs(catalog, Path(env["ASSET_PIPELINE_DATA_DIR"]), prompts="llm")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = dg.materialize(list(defs.assets or []), selection=[PROMPTS, IMAGES], instance=instance,
                                resources=defs.resources, raise_on_error=False,
                                tags={"dagster/asset_partition_range_start": "brief-000",
                                      "dagster/asset_partition_range_end": "written-000"})
        assert result.success
    return env


def test_show_diff_and_estimate_after_a_style_edit(prompts_env, run_cli, fake_openai, tmp_path: Path) -> None:
    shown = json.loads(run_cli("asset-pipeline", "prompts", "show", "brief-001", "--json", env=prompts_env).stdout)
    assert shown["source"] == "brief" and shown["brief"] == "grandmother passing a recipe book number 1"
    assert shown["stored"] == shown["rendered"] == shown["current"] and not shown["needs_llm_call"]
    assert "grandmother passing a recipe book number 1" in run_cli(
        "asset-pipeline", "prompts", "show", "brief-001", env=prompts_env).stdout
    estimate = json.loads(run_cli("asset-pipeline", "estimate", "--json", "--select", "all", env=prompts_env).stdout)
    assert estimate["prompts"] == {"expander": "llm", "model": "fake-llm", "briefs": 4, "to_write": 0, "cache_hits": 4,
                                   "estimated_cost_usd": 0.0}
    assert estimate["cache_hits"] == 5 and estimate["estimated_cost_usd"] == 0.0

    calls = len(fake_openai.requests)
    write_brief_catalog(Path(prompts_env["ASSET_PIPELINE_CATALOG"]), brief_entries(),
                        style={**STYLE, "guide": "Cool ink drawing. Night light."})
    pending = json.loads(run_cli("asset-pipeline", "prompts", "diff", "--json", env=prompts_env).stdout)
    assert sorted(pending["needs_llm_call"]) == [f"brief-{i:03d}" for i in range(4)]
    assert pending["llm_estimate_usd"] > 0 and pending["changed"] == []
    estimate = json.loads(run_cli("asset-pipeline", "estimate", "--json", "--select", "all", env=prompts_env).stdout)
    assert estimate["prompts"]["to_write"] == 4 and estimate["prompts"]["estimated_cost_usd"] > 0
    assert "prompts: 4 from briefs (llm)" in run_cli("asset-pipeline", "estimate", "--select", "all", env=prompts_env).stdout
    assert len(fake_openai.requests) == calls  # no command calls the LLM

    defs = pipeline_defs(Path(prompts_env["ASSET_PIPELINE_CATALOG"]), Path(prompts_env["ASSET_PIPELINE_DATA_DIR"]),
                         prompts="llm")
    with dg.DagsterInstance.from_config(prompts_env["DAGSTER_HOME"]) as instance:
        assert materialize(defs, instance, selection="prompts", first="brief-000", last="written-000").success
    changed = json.loads(run_cli("asset-pipeline", "prompts", "diff", "--json", env=prompts_env).stdout)
    assert sorted(s["key"] for s in changed["changed"]) == [f"brief-{i:03d}" for i in range(4)]
    assert changed["needs_llm_call"] == [] and changed["unchanged"] == 1
    first = changed["changed"][0]
    assert "+Cool ink drawing" in first["diff"] and "-Warm watercolour palette" in first["diff"]
    text = run_cli("asset-pipeline", "prompts", "diff", "brief-000", env=prompts_env)
    assert "--- brief-000" in text.stdout and "1 image(s) would change" in text.stdout
    for result in (text, run_cli("asset-pipeline", "prompts", "show", "brief-000", "--json", env=prompts_env)):
        assert LLM_KEY not in result.stdout + result.stderr


def test_unknown_keys_are_named(cli_env, run_cli) -> None:
    result = run_cli("asset-pipeline", "prompts", "show", "no-such-id")
    assert result.returncode == 2 and "no entry with id 'no-such-id'" in result.stderr
    result = run_cli("asset-pipeline", "prompts", "diff", "img-00", "../../etc")
    assert result.returncode == 2 and "'../../etc'" in result.stderr

"""Replicate through the official client against the local fake server: money-safe end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.helpers import image_statuses, materializations, materialize, pipeline_defs, write_catalog
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN


def replicate_defs(catalog: Path, data_dir: Path, **settings):
    return pipeline_defs(catalog, data_dir, backend="replicate", **settings)


def ledger(data_dir: Path) -> BudgetLedger:
    return BudgetLedger(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"))


def charges(data_dir: Path) -> float:
    return round(sum(e["amount_usd"] for e in ledger(data_dir).entries() if e["kind"] == "charge"), 6)


def entries(count: int, **extra) -> list[dict]:
    return [{"id": f"img-{i:02d}", "category": "hero", "prompt": f"a house number {i}", "width": 1344,
             "height": 768, "seed": i, **extra} for i in range(count)]


def test_a_range_run_generates_fits_stores_and_charges(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", entries(3))
    result = materialize(replicate_defs(catalog, data_dir), instance, first="img-00", last="img-02")
    assert result.success
    made = materializations(result)
    assert sorted(made) == ["img-00", "img-01", "img-02"]
    for meta in made.values():
        assert meta["backend"] == "replicate" and meta["model"] == "black-forest-labs/flux-schnell"
        assert meta["cost_usd"] == pytest.approx(0.003) and meta["prediction_id"]
        image = Image.open(meta["path"])
        assert (image.format, image.size) == ("PNG", (1344, 768))  # fitted from the 16:9 output
    record = json.loads(next((data_dir / "requests").iterdir()).read_text())
    assert Path(record["original_path"]).suffix == ".png" and Path(record["original_path"]).exists()
    assert fake_replicate.created_total == 3
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.009)
    inputs = next(iter(fake_replicate.predictions.values())).input
    assert inputs["aspect_ratio"] == "16:9" and inputs["num_inference_steps"] == 4


def test_the_budget_stops_generation_at_the_cap(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", entries(8))
    defs = replicate_defs(catalog, data_dir, budget_per_run_usd=0.010, max_concurrency=2)
    result = materialize(defs, instance, first="img-00", last="img-07")
    assert not result.success
    assert len(materializations(result)) == 3  # 3 x $0.003 fit under $0.010; a 4th would not
    assert fake_replicate.created_total == 3
    message = result.failure_data_for_node("images").error.message
    assert "budget exhausted: the per-run cap is $0.0100" in message
    assert "not started: the budget was exhausted earlier in this run" in message
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.009)
    assert len(image_statuses(defs, instance).failed) == 5


def test_duplicate_prompts_are_paid_once(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    twins = [{**entry, "prompt": "the same house", "seed": 1} for entry in entries(4)]
    catalog = write_catalog(tmp_path / "c.yaml", twins)
    result = materialize(replicate_defs(catalog, data_dir), instance, first="img-00", last="img-03")
    assert result.success
    assert fake_replicate.created_total == 1
    assert sorted(m["cost_usd"] for m in materializations(result).values()) == [0.0, 0.0, 0.0, pytest.approx(0.003)]
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd)


def test_a_failed_prediction_is_retried_and_released(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", [{**entries(1)[0], "prompt": "a house [[fail]]"}])
    result = materialize(replicate_defs(catalog, data_dir, max_attempts=2), instance, partition="img-00")
    assert not result.success
    assert "(after 2 attempt(s): transient->backoff, transient->fail)" in result.failure_data_for_node("images").error.message
    assert not (data_dir / "images" / "img-00.png").exists()
    assert [e["kind"] for e in ledger(data_dir).entries()] == ["reservation", "release"] * 2
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd)


def test_an_undecodable_output_is_charged_as_billed_and_not_paid_for_again(
    fake_replicate, tmp_path: Path, data_dir: Path, instance
) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", [{**entries(1)[0], "prompt": "a house [[corrupt]]"}])
    result = materialize(replicate_defs(catalog, data_dir, max_attempts=2), instance, partition="img-00")
    assert not result.success
    message = result.failure_data_for_node("images").error.message
    assert "output is not a decodable image: no PNG, WEBP, JPEG header (after 1 attempt(s): invalid_output->fail)" in message
    assert not (data_dir / "images" / "img-00.png").exists()
    kinds = [(e["kind"], e["reason"]) for e in ledger(data_dir).entries()]
    assert [kind for kind, _ in kinds] == ["reservation", "charge"]
    assert not any("stored" in reason and kind == "charge" for kind, reason in kinds)
    assert fake_replicate.created_total == 1
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd) == pytest.approx(0.003)


def test_wrong_size_from_a_width_height_model_is_rejected(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    spec = {**entries(1)[0], "prompt": "a house [[wrongsize]]", "model": "stability-ai/sdxl"}
    result = materialize(replicate_defs(write_catalog(tmp_path / "c.yaml", [spec]), data_dir), instance, partition="img-00")
    assert not result.success
    assert "returned 672x384, expected 1344x768" in result.failure_data_for_node("images").error.message
    assert not (data_dir / "images" / "img-00.png").exists()
    assert fake_replicate.bill_usd > 0  # time-billed: the provider was paid anyway, and the ledger says so
    assert charges(data_dir) == pytest.approx(fake_replicate.bill_usd)


def test_a_model_without_a_price_refuses_to_start(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", entries(1))
    result = materialize(replicate_defs(catalog, data_dir, model="someone/unpriced-model"), instance, partition="img-00")
    assert not result.success
    assert fake_replicate.created_total == 0
    assert "no price for model 'someone/unpriced-model'" in str(result.all_events)


def test_rate_limits_and_server_errors_are_retried_and_recorded(
    fake_replicate, tmp_path: Path, data_dir: Path, instance
) -> None:
    fake_replicate.fail_creates = [429, 500]
    catalog = write_catalog(tmp_path / "c.yaml", entries(2))
    result = materialize(replicate_defs(catalog, data_dir, max_concurrency=1), instance, first="img-00", last="img-01")
    assert result.success
    made = materializations(result)
    assert made["img-00"]["attempts"] == 3
    assert made["img-00"]["strategies"] == ["wait_for_reset", "backoff"]
    first_try, second_try = fake_replicate.create_times[0], fake_replicate.create_times[1]
    assert second_try - first_try >= 0.95  # the 429 said Retry-After: 1, and we waited for it
    assert made["img-01"]["attempts"] == 1
    assert fake_replicate.created_total == 2
    entries_ = ledger(data_dir).entries()
    assert [e["kind"] for e in entries_].count("release") == 2  # the refused creations cost nothing
    status = ledger(data_dir).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)


def test_invalid_requests_fail_at_once(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    fake_replicate.fail_creates = [401]
    result = materialize(replicate_defs(write_catalog(tmp_path / "c.yaml", entries(1)), data_dir), instance,
                         partition="img-00")
    message = result.failure_data_for_node("images").error.message
    assert "REPLICATE_API_TOKEN is missing or was refused by Replicate (HTTP 401)" in message
    assert "(after 1 attempt(s): invalid_input->fail)" in message
    assert ledger(data_dir).status(BudgetCaps(20, 10, 20)).open_reservations == 0


def test_the_token_never_appears_in_logs_metadata_or_errors(
    fake_replicate, tmp_path: Path, data_dir: Path, instance, capfd
) -> None:
    fake_replicate.fail_creates = [401]
    catalog = write_catalog(tmp_path / "c.yaml", entries(2))
    result = materialize(replicate_defs(catalog, data_dir, max_concurrency=1), instance, first="img-00", last="img-01")
    everything = "".join(str(event) for event in result.all_events)
    everything += "".join(str(record) for record in instance.all_logs(result.run_id))
    captured = capfd.readouterr()
    everything += captured.out + captured.err + json.dumps(ledger(data_dir).entries())
    assert "HTTP 401" in everything
    assert TOKEN not in everything and TOKEN[:12] not in everything


def test_spend_report_shows_spend_by_day_and_model(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    specs = entries(2) + [{**entries(3)[2], "model": "black-forest-labs/flux-dev"}]
    defs = replicate_defs(write_catalog(tmp_path / "c.yaml", specs), data_dir)
    assert materialize(defs, instance, first="img-00", last="img-02").success
    assert materialize(defs, instance, selection="spend_report").success
    report = json.loads((data_dir / "spend_report.json").read_text())
    assert report["by_model"] == {"black-forest-labs/flux-dev": pytest.approx(0.025),
                                  "black-forest-labs/flux-schnell": pytest.approx(0.006)}
    assert report["total_usd"] == pytest.approx(0.031) == pytest.approx(fake_replicate.bill_usd)
    assert Image.open(data_dir / "spend_report.png").format == "PNG"


def test_data_uri_outputs_and_a_postgres_ledger(fake_replicate, tmp_path: Path, data_dir: Path, instance) -> None:
    from asset_pipeline_testing.postgres import fresh_database

    fake_replicate.output_mode = "data"
    catalog = write_catalog(tmp_path / "c.yaml", entries(2))
    with fresh_database() as url:
        defs = replicate_defs(catalog, data_dir, database_url=url)
        assert materialize(defs, instance, first="img-00", last="img-01").success
        pg_ledger = BudgetLedger(ledger_engine(url))
        assert pg_ledger.status(BudgetCaps(20, 10, 20)).spent_total_usd == pytest.approx(fake_replicate.bill_usd)
        pg_ledger.engine.dispose()
    assert not (data_dir / "ledger.db").exists()


def test_a_prediction_lost_from_sight_keeps_its_reservation_and_is_re_attached(
    fake_replicate, tmp_path: Path, data_dir: Path, instance
) -> None:
    defs = replicate_defs(write_catalog(tmp_path / "c.yaml", entries(1)), data_dir, max_attempts=1)
    fake_replicate.fail_gets = [500]
    first = materialize(defs, instance, partition="img-00")
    assert not first.success
    assert "keeps its reservation and the next run re-attaches" in first.failure_data_for_node("images").error.message
    assert ledger(data_dir).status(BudgetCaps(20, 10, 20)).open_reservations == 1

    second = materialize(defs, instance, partition="img-00")
    assert second.success
    assert fake_replicate.created_total == 1
    status = ledger(data_dir).status(BudgetCaps(20, 10, 20))
    assert status.open_reservations == 0 and status.spent_total_usd == pytest.approx(fake_replicate.bill_usd)


def test_within_a_run_a_retry_re_attaches_instead_of_paying_again(
    fake_replicate, tmp_path: Path, data_dir: Path, instance
) -> None:
    fake_replicate.fail_gets = [500]
    result = materialize(replicate_defs(write_catalog(tmp_path / "c.yaml", entries(1)), data_dir), instance,
                         partition="img-00")
    assert result.success
    assert materializations(result)["img-00"]["strategies"] == ["backoff"]
    assert fake_replicate.created_total == 1


def test_a_failed_time_billed_prediction_is_charged_for_its_time(
    fake_replicate, tmp_path: Path, data_dir: Path, instance
) -> None:
    spec = {**entries(1)[0], "prompt": "a house [[fail]]", "model": "stability-ai/sdxl"}
    defs = replicate_defs(write_catalog(tmp_path / "c.yaml", [spec]), data_dir, max_attempts=1)
    result = materialize(defs, instance, partition="img-00")
    assert not result.success
    [reservation, charge] = ledger(data_dir).entries()
    assert charge["kind"] == "charge" and charge["reason"].startswith("billed by the provider for a failed image")
    assert charge["amount_usd"] == pytest.approx(fake_replicate.bill_usd) and fake_replicate.bill_usd > 0
    assert reservation["amount_usd"] == pytest.approx(0.000975 * 300)  # rate x max_predict_seconds

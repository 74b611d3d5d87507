"""Hostile input at every entry point: each gets a clear error naming what was wrong, nothing is
written outside the data directory, and neither the Replicate token nor the hub token appears in
any log, event, metadata, ledger row, hub message or error text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asset_pipeline.errors import CatalogError, ConfigurationError, UnsafePathError
from asset_pipeline.hub.server import HubConfig
from asset_pipeline.ledger.database import history_rows, ledger_engine
from asset_pipeline.ledger.schema import budget_entries, prediction_journal
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.settings import load_settings
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN
from asset_pipeline_tests.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_tests.hub.running import progress, receive, running_hub

HUB_TOKEN = "hub-TOKEN-must-never-leak-42"
HOSTILE_IDS = ["../../etc/passwd", "a/b", "a\\b", "nul\x00byte", "x" * 5000, "ｅｖｉｌ", "rtl\u202egnp.exe", "", " ", "CON"]
HOSTILE_PROMPTS = ["nul \x00 in prompt", "bell \x07", "p" * 100_000, "", "\u202e\u0000"]


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_hostile_catalog_ids_are_refused_by_name_and_write_nothing(tmp_path: Path, run_cli, cli_env, bad_id: str) -> None:
    catalog = write_catalog(tmp_path / "evil.yaml", [{"id": bad_id, "category": "icon", "prompt": "a key"}])
    before = files_under(tmp_path)
    with pytest.raises(CatalogError) as error:
        pipeline_defs(catalog, tmp_path / "data")
    assert "evil.yaml: entry" in str(error.value) and "field 'id'" in str(error.value)
    assert "\x00" not in str(error.value) and len(str(error.value)) < 2000
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("prompt", HOSTILE_PROMPTS)
def test_hostile_prompts_are_refused_by_the_cli_validator(tmp_path: Path, run_cli, prompt: str) -> None:
    catalog = write_catalog(tmp_path / "evil.yaml", [{"id": "ok-id", "category": "icon", "prompt": prompt}])
    result = run_cli("asset-pipeline", "catalog", "validate", str(catalog))
    assert result.returncode == 1
    assert "entry 'ok-id'" in result.stdout + result.stderr and "field 'prompt'" in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e12", "ten dollars"])
def test_absurd_budgets_in_the_environment_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_BUDGET_DAILY_USD", value)
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_BUDGET_DAILY_USD: "):
        load_settings()


@pytest.mark.parametrize("value", [-5.0, 1e12])
def test_absurd_budgets_in_run_config_fail_the_run_before_anything_is_sent(
    catalog_path: Path, data_dir: Path, instance, fake_replicate, value: float
) -> None:
    defs = pipeline_defs(catalog_path, data_dir, backend="replicate")
    result = dg.materialize(
        list(defs.assets), selection=["images"], instance=instance, resources=defs.resources, partition_key="img-00",
        run_config={"resources": {"image_generator": {"config": {"budget_total_usd": value}}}}, raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    assert "budget_total_usd" in str(failure.event_specific_data.error)
    assert fake_replicate.created_total == 0
    assert not list(data_dir.rglob("*.png"))


def test_image_store_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    store = ImageStore(root=str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    for key in ("../outside", "/etc/passwd", "a/../../b", "..", "img\x00"):
        with pytest.raises(UnsafePathError):
            store.partition_path(key)
    with pytest.raises(UnsafePathError):
        store.resolve("../../outside.png")
    (tmp_path / "data" / "images").symlink_to(tmp_path)  # a link out of the root
    with pytest.raises(UnsafePathError):
        store.resolve("images/escape.png")


def test_hub_refuses_bad_tokens_forged_channels_and_oversized_bodies() -> None:
    with running_hub(HubConfig(token=HUB_TOKEN)) as hub:
        for token in ("", "wrong", HUB_TOKEN[:-1], HUB_TOKEN + "x", "Bearer " + HUB_TOKEN):
            assert hub.publish(progress("a"), token=token or None).status_code == 401
            with pytest.raises(InvalidStatus):
                hub.subscribe(f"/ws/monitor?token={token}").recv(timeout=5)
        for forged in ("/ws/runs/..%2Fmonitor", "/ws/everything", "/ws/runs/"):  # no such route
            with pytest.raises(InvalidStatus):
                hub.subscribe(f"{forged}?token={HUB_TOKEN}").recv(timeout=5)
        for forged in ("/ws/partitions/%2e%2e", "/ws/runs/%00", "/ws/partitions/" + "a" * 300):  # invalid names
            with hub.subscribe(f"{forged}?token={HUB_TOKEN}") as client:
                assert receive(client)["code"] == "invalid_channel"
                with pytest.raises(ConnectionClosed) as closed:
                    receive(client)
                assert closed.value.rcvd.code == 1008
        headers = {"Authorization": f"Bearer {HUB_TOKEN}"}
        huge = httpx.post(hub.url + "/api/events", content=b"[" + b"1," * 3_000_000 + b"1]", headers=headers)
        assert huge.status_code == 413
        bad = httpx.post(hub.url + "/api/events", content=b"\xff\xfe garbage", headers=headers)
        assert bad.status_code == 400
        assert HUB_TOKEN not in bad.text and HUB_TOKEN not in huge.text


def test_no_token_reaches_any_log_event_metadata_ledger_or_hub_message(
    catalog_path: Path, data_dir: Path, instance, fake_replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSET_PIPELINE_HUB_TOKEN", HUB_TOKEN)
    failing = write_catalog(catalog_path.parent / "mixed.yaml", [
        {"id": "bad-1", "category": "icon", "prompt": "a key [[fail]]", "width": 512, "height": 512},
        {"id": "good-1", "category": "icon", "prompt": "a key", "width": 512, "height": 512},
    ])
    with running_hub(HubConfig(token=HUB_TOKEN, image_root=data_dir)) as hub:
        with hub.subscribe(f"/ws/monitor?token={HUB_TOKEN}") as client:
            receive(client)
            defs = pipeline_defs(failing, data_dir, backend="replicate", hub_url=hub.url, max_attempts=2)
            result = materialize(defs, instance, first="bad-1", last="good-1")
            hub_text = "\n".join(hub.hub.state.history())
        status_text = httpx.get(hub.url + "/api/status", headers={"Authorization": f"Bearer {HUB_TOKEN}"}).text
    assert not result.success  # bad-1 failed, with its reason logged
    event_text = "\n".join(
        json.dumps(entry.to_json() if hasattr(entry, "to_json") else str(entry)) for entry in instance.all_logs(result.run_id)
    )
    assert "bad-1" in event_text and "good-1" in hub_text
    engine = ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}")
    ledger_text = json.dumps([*history_rows(engine, budget_entries), *history_rows(engine, prediction_journal)],
                             default=str)
    store_text = "\n".join(p.read_text(errors="replace") for p in data_dir.rglob("*.json"))
    for secret in (TOKEN, HUB_TOKEN):
        for where, text in (("event log", event_text), ("hub", hub_text), ("status", status_text),
                            ("ledger", ledger_text), ("store", store_text)):
            assert secret not in text and secret[:12] not in text, f"{where} leaks a token"
    assert str(os.environ.get("ASSET_PIPELINE_HUB_TOKEN")) == HUB_TOKEN

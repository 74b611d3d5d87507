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
from asset_pipeline_testing.helpers import materialize, pipeline_defs, write_catalog
from asset_pipeline_testing.hub_process import progress, receive, running_hub
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN

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
        run_config={"resources": {"image_generator": {"config": {"budget": {"total_usd": value}}}}}, raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    assert "total_usd" in str(failure.event_specific_data.error)
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


DB_PASSWORD = "ledger-PASSWORD-must-never-be-stored-77"


def readable_content(path: Path) -> bytes:
    """A file's bytes; for SQLite files also every cell, zlib-compressed ones (Dagster's snapshots) inflated."""
    import sqlite3
    import zlib

    content = path.read_bytes()
    if not content.startswith(b"SQLite format 3"):
        return content
    cells = [content]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                for cell in row:
                    raw = cell if isinstance(cell, bytes) else str(cell).encode()
                    cells.append(raw)
                    try:
                        cells.append(zlib.decompress(raw))
                    except zlib.error:
                        pass
    return b"\n".join(cells)


def test_no_secret_is_stored_anywhere_in_dagster_home(run_cli, cli_env, fake_replicate) -> None:
    """The ledger URL's password, the Replicate token and the hub token are bound with dg.EnvVar:
    after real CLI runs (one with a partial --config-json), no file Dagster keeps (runs.db, event
    logs, schedules, compute logs, storage) holds any of them, and no output printed them."""
    from sqlalchemy.engine import make_url

    from asset_pipeline_testing.postgres import fresh_database
    from asset_pipeline_testing.serving import free_port

    with fresh_database() as plain_url:  # the test server trusts loopback, so any password connects
        ledger_url = make_url(plain_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
        env = {**cli_env, "ASSET_PIPELINE_DATABASE_URL": ledger_url, "ASSET_PIPELINE_BACKEND": "replicate",
               "REPLICATE_BASE_URL": fake_replicate.base_url, "REPLICATE_API_TOKEN": TOKEN,
               "ASSET_PIPELINE_HUB_TOKEN": HUB_TOKEN, "ASSET_PIPELINE_HUB_URL": f"http://127.0.0.1:{free_port()}",
               "ASSET_PIPELINE_POLL_INTERVAL_S": "0.02"}
        command = ("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images")
        first = run_cli(*command, "--partition", "img-01", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        partial = json.dumps({"resources": {"image_generator": {"config": {"max_predict_seconds": 90}}}})
        second = run_cli(*command, "--partition", "img-02", "--config-json", partial, env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        budget = run_cli("asset-pipeline", "budget", env=env)
        assert budget.returncode == 0, budget.stderr
    assert fake_replicate.created_total == 2  # both runs really used the ledger and the token
    home = Path(cli_env["DAGSTER_HOME"])
    stored = {path: readable_content(path) for path in home.rglob("*") if path.is_file()}
    assert any(path.name == "runs.db" for path in stored) and len(stored) > 5
    for secret in (DB_PASSWORD, TOKEN, HUB_TOKEN):
        for path, content in stored.items():
            assert secret.encode() not in content, f"{path} stores a secret"
        for done in (first, second, budget):
            assert secret not in done.stdout + done.stderr

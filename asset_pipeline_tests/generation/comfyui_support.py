"""Shared builders for the ComfyUI backend tests: fake servers, catalogs, definitions, the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import pipeline_defs
from asset_pipeline_testing.money_invariants import money_violations

GPU_HOUR_USD = 3.6  # $0.001 per GPU second, the fake's price too
CAPS = BudgetCaps(20.0, 10.0, 20.0)


def entries(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"img-{i:02d}", "category": "hero", "prompt": f"a lighthouse number {i}", "width": 96,
             "height": 64, "seed": i, "steps": 12, **extra} for i in range(count)]


def comfy_defs(catalog: Path, data_dir: Path, servers: list[FakeComfyState], **settings: Any) -> dg.Definitions:
    options: dict[str, Any] = {"comfyui_url": ",".join(s.base_url for s in servers), "gpu_hour_usd": GPU_HOUR_USD,
                               "poll_interval_s": 0.02, "backoff_base_s": 0.01, "hub_enabled": False,
                               "comfyui_max_job_seconds": 20.0, **settings}
    return pipeline_defs(catalog, data_dir, backend="comfyui", **options)


def ledger(data_dir: Path) -> BudgetLedger:
    return BudgetLedger(ledger_engine(f"sqlite:///{data_dir / 'ledger.db'}"))


def charged(data_dir: Path) -> float:
    return sum(e["amount_usd"] for e in ledger(data_dir).entries() if e["kind"] == "charge")


def violations(data_dir: Path, servers: list[FakeComfyState] | None, **options: Any) -> list[str]:
    """Broken money invariants; with `servers`, the ledger must also equal their bill."""
    bill = None if servers is None else sum(server.bill_usd for server in servers)
    return money_violations(ledger(data_dir).engine, caps=CAPS, provider_bill_usd=bill, **options)


def attempts(data_dir: Path) -> list[dict[str, Any]]:
    from asset_pipeline.ledger.attempts import AttemptLog

    return AttemptLog(ledger(data_dir).engine).history()


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = result.failure_data_for_node("images")
    assert failure is not None and failure.error is not None
    return failure.error.message

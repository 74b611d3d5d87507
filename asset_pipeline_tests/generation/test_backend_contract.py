"""The metered-call core's contract, run against every backend in
`asset_pipeline_testing.backend_contract.CONTRACT_BACKENDS` (placeholder, Replicate against the
fake server, diffusers on the tiny SDXL): through `ImageProducer.produce`, with a SQLite ledger and
the local store, the money invariants of issue 11 hold (`money_violations`: charges finite, >= 0
and <= their reservation, caps never passed, ledger equal to the provider's bill, nothing created
twice), a stored image is charged once, a cache hit costs $0 and sends nothing, a spent budget
sends nothing, and a lost create answer never leads to a second create.

A new backend passes these or it does not land: add its entry to `CONTRACT_BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import BudgetExhaustedError
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.backend_contract import CONTRACT_BACKENDS, ContractBackend, ContractCore, build_producer
from asset_pipeline_testing.money_invariants import money_violations

CAPS = BudgetCaps(20, 10, 20)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contract-shared")


@pytest.fixture(params=CONTRACT_BACKENDS, ids=[entry.name for entry in CONTRACT_BACKENDS])
def under_contract(request: pytest.FixtureRequest, shared_dir: Path, tmp_path: Path) -> Iterator[ContractBackend]:
    with request.param.open(shared_dir, tmp_path) as contract:
        yield contract


def image_request(contract: ContractBackend, key: str = "img-00", prompt: str = "a brass key") -> GenerationRequest:
    width, height = contract.size
    spec = ImageSpec.model_validate({"id": key, "category": "icon", "prompt": prompt, "width": width,
                                     "height": height, "seed": 3, "steps": 2})
    backend = contract.backend
    return build_request(spec, backend=backend.name, model=backend.default_model)


def violations(core: ContractCore, contract: ContractBackend, *, caps: BudgetCaps = CAPS) -> list[str]:
    creations = contract.creations() if contract.creations else None
    return money_violations(core.ledger.engine, caps=caps, provider_bill_usd=contract.provider_bill_usd(),
                            creations_per_input=creations, store_dir=core.store.root_path)


def charges(core: ContractCore) -> list[dict]:
    return [entry for entry in core.ledger.entries() if entry["kind"] == "charge"]


def test_a_stored_image_is_charged_once_within_its_reservation(under_contract: ContractBackend, tmp_path: Path) -> None:
    core = build_producer(under_contract.backend, tmp_path, caps=CAPS)
    result = core.producer.produce(image_request(under_contract), run_id="run-1")
    assert result.kind == "stored", result.reason
    assert result.stored is not None and result.stored.path.is_file()
    assert result.stored.record["cost_usd"] == result.cost_usd
    if under_contract.backend.is_paid:
        [charge] = charges(core)
        [reservation] = [e for e in core.ledger.entries() if e["kind"] == "reservation"]
        assert charge["amount_usd"] == pytest.approx(result.cost_usd, abs=1e-6)  # the ledger books micro-dollars
        assert 0 <= charge["amount_usd"] <= reservation["amount_usd"]
    else:
        assert result.cost_usd == 0 and core.ledger.entries() == []
    assert violations(core, under_contract) == []


def test_a_cache_hit_costs_nothing_and_sends_nothing(under_contract: ContractBackend, tmp_path: Path) -> None:
    core = build_producer(under_contract.backend, tmp_path, caps=CAPS)
    first = core.producer.produce(image_request(under_contract), run_id="run-1")
    assert first.kind == "stored", first.reason
    entries, bill = core.ledger.entries(), under_contract.provider_bill_usd()
    created = dict(under_contract.creations()) if under_contract.creations else None

    # Another partition asking for the same picture, in a later run: the store answers.
    again = core.producer.produce(image_request(under_contract, key="img-01"), run_id="run-2")
    assert again.kind == "cache_hit" and again.cost_usd == 0 and again.attempts == 0
    assert again.stored is not None and again.stored.sha256 == first.stored.sha256
    assert core.ledger.entries() == entries
    assert under_contract.provider_bill_usd() == pytest.approx(bill)
    if created is not None:
        assert dict(under_contract.creations()) == created
    assert violations(core, under_contract) == []


def test_a_spent_budget_sends_nothing(under_contract: ContractBackend, tmp_path: Path) -> None:
    if not under_contract.backend.is_paid:
        pytest.skip(f"{under_contract.backend.name} is free: no cap can stop it")
    caps = BudgetCaps(20, 10, 0.0001)  # a per-run cap below any reservation
    core = build_producer(under_contract.backend, tmp_path, caps=caps)
    result = core.producer.produce(image_request(under_contract), run_id="run-1")
    assert result.kind == "failed" and result.failure_kind == "budget_exhausted"
    assert isinstance(result.error, BudgetExhaustedError) and result.error.cap == "per-run"
    assert result.error.requested_usd > result.error.limit_usd == pytest.approx(0.0001)
    assert result.stored is None and core.ledger.entries() == []
    assert under_contract.provider_bill_usd() == 0
    assert not under_contract.creations or sum(under_contract.creations().values()) == 0
    assert violations(core, under_contract, caps=caps) == []


def test_a_lost_create_answer_never_leads_to_a_second_create(under_contract: ContractBackend, tmp_path: Path) -> None:
    if under_contract.lose_next_create is None or under_contract.creations is None:
        pytest.skip(f"{under_contract.backend.name} creates nothing remotely")
    core = build_producer(under_contract.backend, tmp_path, caps=CAPS)
    under_contract.lose_next_create()
    result = core.producer.produce(image_request(under_contract), run_id="run-1")
    assert result.kind == "stored", result.reason
    assert result.attempts == 2  # the first one lost its answer
    assert sum(under_contract.creations().values()) == 1  # found at the provider, not created again
    journaled = core.producer.metered.journal.history(prediction_id=result.prediction_id)
    assert any("answer to its create was lost" in (row["detail"] or "") for row in journaled)
    [charge] = charges(core)
    assert charge["amount_usd"] == pytest.approx(under_contract.provider_bill_usd())
    assert violations(core, under_contract) == []

"""Every backend under the metered-call core's contract: the registry the contract tests
(`asset_pipeline_tests/generation/test_backend_contract.py`) are parametrized over.

Each entry of `CONTRACT_BACKENDS` is a `ContractEntry`: a name, and `open(shared_dir, run_dir)`,
a context manager that yields a `ContractBackend` (the backend, what its provider billed, how
often each input was created there, and, for a provider with remote creates, a switch that loses
the answer to the next create). `build_producer` puts any backend behind the real core
(`MeteredGenerator` + `ImageProducer`, a SQLite ledger, the local image store): no Dagster, no
daemon.

Adding a backend (ComfyUI, an LLM, another hosted API) = adding one entry here:

    @contextmanager
    def _comfyui(shared_dir: Path, run_dir: Path) -> Iterator[ContractBackend]:
        with running_fake_comfyui(...) as server:          # its fake server, on loopback
            backend = ComfyUIBackend(url=server.url, ...)
            yield ContractBackend(backend, provider_bill_usd=lambda: server.bill_usd,
                                  creations=lambda: server.creations,          # None: no remote creates
                                  lose_next_create=server.drop_next_create_answer)  # None: no remote creates
            backend.close()

    CONTRACT_BACKENDS.append(ContractEntry("comfyui", _comfyui))

`shared_dir` lives for the whole test module (build expensive fixtures such as model files there
once); `run_dir` is fresh for each test. A backend with no provider of its own (the local SDXL
pipeline) is wrapped in `BillRecorder`, which keeps what it billed, so "the ledger equals the
provider's bill" is checked for it too. Keep each entry fast: the whole contract runs in well
under a minute.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asset_pipeline.errors import PaidFailure
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.metered import MeteredGenerator, MeteringPolicy
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.producer import ImageProducer
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.circuit import BreakerConfig, CircuitBreaker
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.resources.image_store import ImageStore


@dataclass
class ContractBackend:
    """One backend ready for the contract, with what its provider knows.

    `provider_bill_usd()` is what the provider billed so far; `creations()` counts creates per input
    at the provider (None when the backend creates nothing remotely); `lose_next_create()` makes
    the provider create the next prediction but lose the answer (None when there are no remote
    creates); `size` is the image size the contract asks this backend for.
    """

    backend: ImageBackend
    provider_bill_usd: Callable[[], float]
    creations: Callable[[], Mapping[Any, int]] | None = None
    lose_next_create: Callable[[], None] | None = None
    size: tuple[int, int] = (64, 64)


@dataclass(frozen=True)
class ContractEntry:
    name: str
    open: Callable[[Path, Path], AbstractContextManager[ContractBackend]]


class BillRecorder(ImageBackend):
    """Wraps a backend with no provider of its own and keeps what it billed: every rendered
    image's cost and every paid failure's bill (the "provider's bill" for the ledger check)."""

    def __init__(self, inner: ImageBackend):
        self.inner = inner
        self.name, self.is_paid = inner.name, inner.is_paid
        self._lock = threading.Lock()
        self.billed_usd = 0.0

    @property
    def default_model(self) -> str:
        return self.inner.default_model

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        try:
            rendered = self.inner.render(request, session)
        except PaidFailure as failure:
            self._add(failure.billed_usd)
            raise
        self._add(rendered.cost_usd)
        return rendered

    def _add(self, usd: float) -> None:
        with self._lock:
            self.billed_usd += usd

    def reservation_usd(self, model: str) -> float:
        return self.inner.reservation_usd(model)

    def check_models(self, models: list[str]) -> None:
        self.inner.check_models(models)

    def find_prediction(self, request: GenerationRequest, *, created_after: datetime,
                        exclude: frozenset[str] = frozenset()) -> str | None:
        return self.inner.find_prediction(request, created_after=created_after, exclude=exclude)

    def billed_for(self, request: GenerationRequest, prediction_id: str) -> float | None:
        return self.inner.billed_for(request, prediction_id)

    def close(self) -> None:
        self.inner.close()


@dataclass
class ContractCore:
    """The core under test: the producer, and the ledger and store behind it."""

    producer: ImageProducer
    ledger: BudgetLedger
    store: ImageStore
    caps: BudgetCaps


def build_producer(backend: ImageBackend, run_dir: Path, *, caps: BudgetCaps, max_attempts: int = 3) -> ContractCore:
    """The real metered-call core over `backend`: SQLite ledger and image store under `run_dir`."""
    ledger = BudgetLedger(ledger_engine(f"sqlite:///{run_dir / 'ledger.db'}"))
    policy = MeteringPolicy(caps=caps, max_attempts=max_attempts, max_retry_spend_usd=0.10, backoff_base_s=0.01,
                            backoff_cap_s=0.1, max_wait_s=1.0, fallback_models=(), max_outage_s=5.0,
                            poll_interval_s=0.02)
    circuit = CircuitBreaker(ledger.engine, provider=backend.name, config=BreakerConfig())
    metered = MeteredGenerator(backend=backend, ledger=ledger, circuit=circuit,
                               bucket=TokenBucket(rate=100.0, burst=100), policy=policy)
    store = ImageStore(root=str(run_dir / "store"))
    return ContractCore(ImageProducer(metered=metered, store=store), ledger, store, caps)


@contextmanager
def _placeholder(shared_dir: Path, run_dir: Path) -> Iterator[ContractBackend]:
    backend = PlaceholderBackend()
    yield ContractBackend(backend, provider_bill_usd=lambda: 0.0)
    backend.close()


FAKE_REPLICATE_TOKEN = "r8_CONTRACTtokenNEVERshown0123456789"


@contextmanager
def _replicate(shared_dir: Path, run_dir: Path) -> Iterator[ContractBackend]:
    # Imported here: the replicate client is only needed by this entry.
    from asset_pipeline.generation.delivery import DeliveryLimits
    from asset_pipeline.generation.delivery_hosts import delivery_hosts
    from asset_pipeline.generation.pricing import DEFAULT_PRICES
    from asset_pipeline.generation.replicate_backend import ReplicateBackend
    from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
    from asset_pipeline_testing.fake_replicate.server import FakeReplicateState

    with running_fake_replicate(FakeReplicateState(token=FAKE_REPLICATE_TOKEN)) as state, \
            _environment(REPLICATE_BASE_URL=state.base_url):
        backend = ReplicateBackend(
            api_token=FAKE_REPLICATE_TOKEN, prices=dict(DEFAULT_PRICES), max_predict_seconds=30.0,
            poll_interval_s=0.02, delivery=DeliveryLimits(hosts=delivery_hosts(None, provider_base_url=state.base_url)),
        )

        def lose_next_create() -> None:
            state.create_resets += 1

        try:
            yield ContractBackend(backend, provider_bill_usd=lambda: state.bill_usd,
                                  creations=lambda: Counter(state.creations), lose_next_create=lose_next_create,
                                  size=(512, 512))
        finally:
            backend.close()


@contextmanager
def _diffusers(shared_dir: Path, run_dir: Path) -> Iterator[ContractBackend]:
    # Imported here: torch and diffusers load only for this entry.
    from asset_pipeline.generation.diffusers_backend import DiffusersBackend
    from asset_pipeline.generation.diffusers_options import DiffusersOptions
    from asset_pipeline.generation.diffusers_pipelines import unload_all
    from asset_pipeline_testing.tiny_sdxl import save_tiny_sdxl

    model_dir = shared_dir / "tiny-sdxl"
    if not (model_dir / "model_index.json").is_file():
        save_tiny_sdxl(model_dir)
    # 36 USD a GPU hour (a cent a second) and 100 s at most: a $1 reservation, real charges.
    options = DiffusersOptions(model_dir=str(model_dir), refiner_dir=None, device="cpu", dtype="float32",
                               gpu_hour_usd=36.0, max_render_seconds=100.0)
    backend = BillRecorder(DiffusersBackend(options))
    try:
        yield ContractBackend(backend, provider_bill_usd=lambda: backend.billed_usd, size=(64, 64))
    finally:
        backend.close()
        unload_all()


@contextmanager
def _comfyui(shared_dir: Path, run_dir: Path) -> Iterator[ContractBackend]:
    # Imported here: only this entry needs the ComfyUI client.
    from asset_pipeline.generation.comfyui_backend import ComfyUIBackend, ComfyUIConfig
    from asset_pipeline.generation.comfyui_workflow import load_workflow
    from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui
    from asset_pipeline_testing.fake_comfyui.server import FakeComfyState

    with running_fake_comfyui(FakeComfyState(job_seconds=0.05)) as server:
        backend = ComfyUIBackend(ComfyUIConfig(urls=[server.base_url], workflow=load_workflow(None),
                                               gpu_hour_usd=server.gpu_hour_usd, max_job_seconds=30.0,
                                               poll_interval_s=0.02))
        try:
            yield ContractBackend(backend, provider_bill_usd=lambda: server.bill_usd,
                                  creations=lambda: server.creations, lose_next_create=server.drop_next_create_answer,
                                  size=(64, 64))
        finally:
            backend.close()


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (the official client reads REPLICATE_BASE_URL)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


CONTRACT_BACKENDS: list[ContractEntry] = [
    ContractEntry("placeholder", _placeholder),
    ContractEntry("replicate", _replicate),
    ContractEntry("diffusers", _diffusers),
    ContractEntry("comfyui", _comfyui),
]

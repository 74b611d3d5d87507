"""Shared builders for tests: small catalogs, definitions over them, and runs on a real instance."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.definitions import build_defs
from asset_pipeline.errors import GenerationError
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.partition_status import PartitionStatuses, partition_statuses
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.settings import PipelineSettings


def small_entries(count: int = 6) -> list[dict[str, Any]]:
    return [
        {"id": f"img-{i:02d}", "category": "icon", "prompt": f"a test icon number {i}", "width": 96, "height": 64}
        for i in range(count)
    ]


def write_catalog(path: Path, entries: list[Any], defaults: dict[str, Any] | None = None) -> Path:
    document: dict[str, Any] = {"images": entries}
    if defaults is not None:
        document["defaults"] = defaults
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def pipeline_defs(catalog: Path, data_dir: Path, **settings: Any) -> dg.Definitions:
    return build_defs(PipelineSettings(catalog=catalog, data_dir=data_dir, **settings))


def materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    selection: str = "images",
    first: str | None = None,
    last: str | None = None,
    partition: str | None = None,
    resources: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run `selection` for one partition or a FIRST...LAST range, in process, on `instance`."""
    tags = {}
    if first is not None:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first}
    return dg.materialize(
        list(defs.assets or []),
        selection=[selection],
        instance=instance,
        resources={**(defs.resources or {}), **(resources or {})},
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
    )


def image_statuses(defs: dg.Definitions, instance: dg.DagsterInstance) -> PartitionStatuses:
    partitions_def = defs.get_assets_def(IMAGES).partitions_def
    assert partitions_def is not None
    return partition_statuses(instance, IMAGES, partitions_def)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Partition key -> metadata values of each `images` materialization in `result`."""
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == IMAGES:
            found[materialization.partition] = {k: v.value for k, v in materialization.metadata.items()}
    return found


class FailingBackend(ImageBackend):
    """Placeholder images, except that the listed partitions fail like a provider error would."""

    name = "placeholder"

    def __init__(self, failing: set[str]):
        self._failing = frozenset(failing)  # a copy: no state shared with the caller or other instances
        self._inner = PlaceholderBackend()

    @property
    def default_model(self) -> str:
        return self._inner.default_model

    def render(self, request: GenerationRequest, session: RenderSession | None = None) -> RenderedImage:
        if request.partition_key in self._failing:
            raise GenerationError(request.partition_key, "injected provider failure")
        return self._inner.render(request, session)


class FailingGenerator(ImageGenerator):
    """The real generator resource with `FailingBackend` injected through `build_backend`."""

    failing_ids: list[str] = Field(default_factory=list)

    def build_backend(self) -> ImageBackend:
        return FailingBackend(set(self.failing_ids))


class BrokenBytesBackend(PlaceholderBackend):
    """Returns bytes that are not an image, to prove the generator refuses them."""

    def render(self, request: GenerationRequest, session: RenderSession | None = None) -> RenderedImage:
        return RenderedImage(png=b"<html>rate limited</html>", model=request.model)


class BrokenBytesGenerator(ImageGenerator):
    def build_backend(self) -> ImageBackend:
        return BrokenBytesBackend()


class CountingBackend(PlaceholderBackend):
    """Placeholder images, recording which partitions this backend actually rendered (per instance),
    and appending each to `log` when given, for a test to read after a run."""

    def __init__(self, log: Path | None = None):
        self.rendered: list[str] = []
        self._log = log
        self._lock = threading.Lock()

    def render(self, request: GenerationRequest, session: RenderSession | None = None) -> RenderedImage:
        with self._lock:
            self.rendered.append(request.partition_key)
            if self._log is not None:
                with self._log.open("a") as log:
                    log.write(request.partition_key + "\n")
        return super().render(request, session)


class CountingGenerator(ImageGenerator):
    """The real generator over a `CountingBackend`. Dagster builds its own copy of a resource for each
    run, so what was rendered goes to the file `rendered_log` (one per test), never to shared state."""

    rendered_log: str

    def build_backend(self) -> ImageBackend:
        return CountingBackend(Path(self.rendered_log))

    def rendered(self) -> list[str]:
        path = Path(self.rendered_log)
        return path.read_text().split() if path.exists() else []

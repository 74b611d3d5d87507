"""The progress hub resource: publishes per-image progress and run events to `asset-pipeline hub`.

`publish` never blocks and never raises, so a hub that is down or slow cannot slow or fail a
materialization (see `progress.publisher`). `send` is the blocking variant for the
`run_events_to_hub` sensor, which must know whether its events arrived before moving its cursor.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from asset_pipeline.errors import HubUnavailable
from asset_pipeline.progress.messages import ProgressEvent, RunEvent
from asset_pipeline.progress.publisher import BufferedPublisher
from asset_pipeline.resources.run_config_guard import enforce_operator_config
from asset_pipeline.settings import from_settings


class ProgressHub(dg.ConfigurableResource):
    # Factory defaults, so a partial run config keeps the operator's values (see run_config_guard).
    url: str = Field(
        default_factory=from_settings("hub_url"), description="The hub's base URL (ASSET_PIPELINE_HUB_URL); fixed by the operator."
    )
    token: str | None = Field(
        default_factory=lambda: None,
        description="Shared secret; bind with dg.EnvVar('ASSET_PIPELINE_HUB_TOKEN'); fixed by the operator.",
    )
    enabled: bool = Field(default_factory=from_settings("hub_enabled"), description="Publish at all; off makes every call a no-op.")
    buffer_size: int = Field(default_factory=lambda: 10_000, ge=1, description="Events held while the hub is slow; more are dropped.")
    timeout_s: float = Field(default_factory=lambda: 2.0, gt=0, description="Longest wait for one POST.")
    linger_s: float = Field(default_factory=lambda: 0.05, ge=0, description="Events published within this long share one POST.")

    _client: httpx.Client | None = PrivateAttr(default=None)
    _publisher: BufferedPublisher | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run config must not send the token (or the progress) to another address.
        enforce_operator_config(self, context, label="progress_hub",
                                fixed={"url": "ASSET_PIPELINE_HUB_URL", "token": "ASSET_PIPELINE_HUB_TOKEN"})
        log = context.log or logging.getLogger(__name__)
        if self.enabled:
            self._publisher = BufferedPublisher(self._post, buffer_size=self.buffer_size, linger_s=self.linger_s,
                                                on_problem=lambda message: log.warning(f"{message} [{self.url}]"))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._publisher is not None:
            self._publisher.close()
            if self._publisher.dropped and context.log:
                context.log.warning(f"{self._publisher.dropped} progress event(s) were not delivered to the hub")
            self._publisher = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def dropped(self) -> int:
        return self._publisher.dropped if self._publisher else 0

    def publish(self, event: ProgressEvent | RunEvent) -> None:
        """Queue one event for the hub; returns at once whatever the hub's state."""
        if self._publisher is not None:
            self._publisher.publish(event.model_dump(exclude_none=True))

    def send(self, events: list[ProgressEvent | RunEvent]) -> None:
        """POST `events` now; raise `HubUnavailable` unless the hub accepted them."""
        if not self.enabled or not events:
            return
        try:
            self._post([event.model_dump(exclude_none=True) for event in events])
        except httpx.HTTPError as exc:
            raise HubUnavailable(self.url, f"progress hub at {self.url} unreachable: {exc.__class__.__name__}") from None

    def _post(self, batch: list[dict[str, Any]]) -> None:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._client = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout_s)
        response = self._client.post("/api/events", json=batch)
        if response.status_code != 200:
            raise HubUnavailable(self.url, f"progress hub at {self.url} answered HTTP {response.status_code}",
                                 status=response.status_code)

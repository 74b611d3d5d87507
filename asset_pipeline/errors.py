"""Every error the pipeline raises on purpose, with structured fields.

    AssetPipelineError
    ├── CatalogError            the catalog file is unreadable or invalid (one CatalogProblem per fault)
    ├── ConfigurationError      a setting or environment variable is unusable
    ├── ReviewError             a review cannot be recorded: bad partition, unknown image, bad note
    ├── StoreError              the image store cannot read or write an image
    │   └── UnsafePathError     a path would leave the store's root
    └── GenerationError         one partition's image could not be produced
        ├── InvalidImageError   a backend returned bytes that are not the image asked for
        ├── BudgetExhaustedError  a spending cap would be passed; nothing was sent
        ├── RequestInFlightError  another run is generating the same image right now; nothing was sent
        ├── ProviderError       the provider refused or failed a request (HTTP status when known)
        │   └── CreateOutcomeUnknown  a create's answer was lost or garbled: the prediction may exist
        ├── OutputNotFetched    the provider made the image but we could not download it yet
        │   └── OutputRefused   its output can never be used: host, scheme, size or encoding refused
        ├── CircuitOpenError    the provider's circuit stayed open past the longest outage ("provider unavailable since")
        ├── RetriesExhausted    every applicable retry strategy failed; `attempts` says which
        ├── RenderCancelled     the run was terminated while a local pipeline was denoising
        └── PaidFailure         (generation.backend) failed after the provider billed `billed_usd`

Messages never contain secrets: they name files, catalog entries, fields and partition keys only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class AssetPipelineError(Exception):
    """Base class for the pipeline's own errors."""


@dataclass(frozen=True)
class CatalogProblem:
    """One fault in a catalog file, located as precisely as the file allows."""

    file: str
    message: str
    entry: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.entry is not None:
            where.append(f"entry {self.entry}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"


class CatalogError(AssetPipelineError):
    """The catalog cannot be used; `problems` lists every fault found, one line each."""

    def __init__(self, problems: list[CatalogProblem]):
        self.problems = tuple(problems)
        count = len(self.problems)
        header = f"invalid image catalog ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class ConfigurationError(AssetPipelineError):
    """A setting is missing or unusable; `setting` names it (never its secret value)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class StoreError(AssetPipelineError):
    """The image store failed to read or write `path`."""

    def __init__(self, path: Path | str, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class UnsafePathError(StoreError):
    """`path` would leave the store's root or is not a name the store accepts; `reason` says which."""


class GenerationError(AssetPipelineError):
    """The image for `partition_key` could not be produced; `reason` is safe to show and log."""

    def __init__(self, partition_key: str, reason: str):
        self.partition_key = partition_key
        self.reason = reason
        super().__init__(f"{partition_key}: {reason}")


class InvalidImageError(GenerationError):
    """A backend returned bytes that do not decode to an image of the requested size."""


class BudgetExhaustedError(GenerationError):
    """A cap would be passed; `cap`, `limit_usd`, `committed_usd` and `requested_usd` say how."""

    def __init__(self, partition_key: str, reason: str, *, cap: str):
        super().__init__(partition_key, reason)
        self.cap = cap


class ProviderError(GenerationError):
    """The provider refused or failed; `status` is its HTTP status, `retry_after` its Retry-After header."""

    def __init__(self, partition_key: str, reason: str, *, status: int | None = None, retry_after: str | None = None):
        super().__init__(partition_key, reason)
        self.status = status
        self.retry_after = retry_after


class CircuitOpenError(GenerationError):
    """The provider's circuit stayed open longer than `max_outage_s`: the reason names when the
    outage began and the provider's last error; the request was not sent again."""


class RetriesExhausted(GenerationError):
    """Every strategy was tried (or none applies); `attempts` lists them, `last` is the final error."""

    def __init__(self, partition_key: str, reason: str, *, attempts: list, last: GenerationError):
        super().__init__(partition_key, reason)
        self.attempts = attempts
        self.last = last


class OutputNotFetched(GenerationError):
    """The prediction succeeded but its output could not be downloaded; a later attempt re-attaches.

    `prediction_id` and `provider_billed_usd` (what the provider billed for it), when the backend
    knows them, let the generator close the reservation once the output is found unfetchable for
    good. (Not `billed_usd`: nothing is booked yet while the output may still be fetched.)
    """

    def __init__(self, partition_key: str, reason: str, *, prediction_id: str | None = None,
                 provider_billed_usd: float | None = None):
        super().__init__(partition_key, reason)
        self.prediction_id = prediction_id
        self.provider_billed_usd = provider_billed_usd


class CreateOutcomeUnknown(ProviderError):
    """A create request may have reached the provider but its answer was lost or unreadable: the
    reservation stays open and the provider is searched for the prediction before any new create."""


class OutputRefused(OutputNotFetched):
    """The prediction succeeded but its output is refused for good (a host outside the delivery
    hosts, another scheme, a redirect loop, too many bytes, a garbage `data:` URI, an expired file).

    `prediction_id` names it and `billed_usd` is what the provider billed for it; retrying the same
    request would only pay again for the same answer.
    """

    def __init__(self, partition_key: str, reason: str, *, prediction_id: str, billed_usd: float):
        super().__init__(partition_key, reason, prediction_id=prediction_id, provider_billed_usd=billed_usd)
        self.billed_usd = billed_usd


class RenderCancelled(GenerationError):
    """The run was terminated mid-denoising; the loop stopped at the next step, before decoding."""


class RequestInFlightError(GenerationError):
    """Another run holds an open reservation for the same request hash; `run_id` names it."""

    def __init__(self, partition_key: str, reason: str, *, run_id: str):
        super().__init__(partition_key, reason)
        self.run_id = run_id


class ReviewError(AssetPipelineError):
    """A review was refused; `field` names the input at fault (partition_key, sha256, decision, note,
    prompt_addition). The message never echoes more than a short prefix of the input."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")

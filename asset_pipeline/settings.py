"""Process-wide settings read from `ASSET_PIPELINE_*` environment variables (pydantic-settings).

The operator's environment is the authority: `definitions.py` hands these values to the resources,
whose field defaults also come from here (`from_settings`, `setting_field`), so a run config that
sets a few fields keeps every other one at the operator's value. Each setting is declared once:
scalars here (resources copy their bounds with `setting_field`), groups as nested config blocks
(`config_blocks.py`, `generation/diffusers_options.py`) that both this class and the resources nest;
`BLOCKS` names each block field's documented variable (ASSET_PIPELINE_BUDGET_TOTAL_USD ->
`budget.total_usd`), and the flat names (`budget_total_usd=...`) are accepted as keywords too. Run config may tighten the caps and tune harmless
knobs, never raise a cap, switch the backend or move the ledger (`resources/run_config_guard.py`).
Secrets are not read here: they are bound with `dg.EnvVar` in `definitions.py` so Dagster never
stores their values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from upath import UPath

from asset_pipeline.catalog import Catalog, load_catalog
from asset_pipeline.config_blocks import BreakerOptions, BudgetOptions, RetryOptions
from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.storage.database_url import check_database_url
from asset_pipeline.storage.object_store import is_object_url, object_root

Backend = Literal["placeholder", "replicate", "diffusers", "comfyui"]


def _data_dir(value: Any) -> Path | UPath:
    """A local folder (`Path`) or, for `s3://bucket/prefix`, an object-store root (issue 16)."""
    if is_object_url(value):
        return object_root(str(value), variable="ASSET_PIPELINE_DATA_DIR")
    if isinstance(value, (str, Path)):
        return Path(value)
    raise ValueError("expected a folder path or an s3://bucket/prefix URL")


DataDir = Annotated[Path | UPath, PlainValidator(_data_dir)]


def _default_data_dir() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    base = Path(home) if home else Path.cwd() / ".dagster_home"
    return base / "asset_pipeline_data"


@dataclass(frozen=True)
class Block:
    """A nested config block and the documented environment variable of each of its fields."""

    options: type[BaseModel]
    prefix: str  # a field's variable is prefix + FIELD_NAME unless `renamed` says otherwise
    renamed: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        return {name: self.renamed.get(name) or self.prefix + name.upper() for name in self.options.model_fields}


BLOCKS = {
    "budget": Block(BudgetOptions, "ASSET_PIPELINE_BUDGET_"),
    "retries": Block(RetryOptions, "ASSET_PIPELINE_"),
    "breaker": Block(BreakerOptions, "ASSET_PIPELINE_BREAKER_"),
    "diffusers": Block(DiffusersOptions, "ASSET_PIPELINE_DIFFUSERS_", {
        "model_dir": "ASSET_PIPELINE_DIFFUSERS_MODEL", "refiner_dir": "ASSET_PIPELINE_DIFFUSERS_REFINER",
        "gpu_hour_usd": "ASSET_PIPELINE_GPU_HOUR_USD"}),
}
# flat name (the variable without ASSET_PIPELINE_, lower case) -> (block, field)
FLAT_NAMES = {variable.removeprefix("ASSET_PIPELINE_").lower(): (block, name)
              for block, spec in BLOCKS.items() for name, variable in spec.variables().items()}


def fold_flat_names(data: Any) -> Any:
    """`budget_total_usd=5` (a keyword named as the variable reads) sets `budget.total_usd`; used by the
    settings and by the resources that nest the blocks, so flat keywords keep working for both."""
    if not isinstance(data, Mapping) or not FLAT_NAMES.keys() & data.keys():
        return data
    folded = dict(data)
    for flat in sorted(FLAT_NAMES.keys() & data.keys()):
        block, name = FLAT_NAMES[flat]
        current = folded.get(block) or {}
        current = current.model_dump() if isinstance(current, BaseModel) else dict(current)
        folded[block] = {**current, name: folded.pop(flat)}
    return folded


class _BlockVariables(PydanticBaseSettingsSource):
    """Reads each block field from its documented variable (pydantic-settings' own nested-variable
    scheme, ASSET_PIPELINE_BUDGET__TOTAL_USD, would rename every documented variable)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for block, spec in BLOCKS.items():
            values = {name: os.environ[variable] for name, variable in spec.variables().items() if variable in os.environ}
            if values:
                found[block] = values
        return found


class PipelineSettings(BaseSettings):
    """Environment overrides, each documented in the README's table."""

    model_config = SettingsConfigDict(env_prefix="ASSET_PIPELINE_", extra="ignore")

    data_dir: DataDir = Field(default_factory=_default_data_dir, description="image store root: a folder or s3://bucket/prefix")
    catalog: Path | None = Field(default=None, description="catalog YAML file; None is the bundled one")
    backend: Backend = Field(default="placeholder", description="which backend generates images")
    model: str | None = Field(default=None, description="model reference for the backend")
    partitions_per_run: int | None = Field(
        default=None, ge=1, description="backfill runs of this many partitions; unset: a backfill is one run"
    )
    max_concurrency: int = Field(default=8, ge=1, le=256, description="images generated at once in one run")
    database_url: str | None = Field(default=None, description="ledger database URL; None is ledger.db in the data dir")
    requests_per_second: float = Field(default=10.0, gt=0, description="new predictions per second (all runs together by default)")
    poll_interval_s: float = Field(default=0.5, gt=0, description="how often a running prediction is polled")
    fallback_images: bool = Field(default=False, description="store a generic per-category image when all else fails")
    fallback_image_dir: Path | None = Field(default=None, description="folder of <category>.png fallback images")
    hub_url: str = Field(default="http://127.0.0.1:4500", description="where progress is published")
    hub_enabled: bool = Field(default=True, description="publish progress to the hub at all")
    images_cron: str = Field(default="0 3 * * *", description="cron of the images_within_budget schedule")
    summaries_cron: str = Field(default="30 6 * * *", description="cron of the summaries refresh schedule")
    delivery_hosts: str | None = Field(
        default=None, description="comma-separated hosts output files may come from; unset: Replicate's delivery hosts"
    )
    max_download_mb: float = Field(default=50.0, gt=0, le=1024, allow_inf_nan=False, description="largest output file downloaded")
    download_timeout_s: float = Field(default=120.0, gt=0, le=3600, allow_inf_nan=False, description="deadline of one download")
    max_output_megapixels: float = Field(default=40.0, gt=0, le=40, allow_inf_nan=False, description="cap on an output's pixels")
    budget: BudgetOptions = Field(default_factory=BudgetOptions, description="spending caps (ASSET_PIPELINE_BUDGET_*)")
    retries: RetryOptions = Field(default_factory=RetryOptions, description="attempts, backoff, fallback models")
    breaker: BreakerOptions = Field(default_factory=BreakerOptions, description="the provider circuit breaker")
    diffusers: DiffusersOptions = Field(default_factory=DiffusersOptions, description="the local SDXL pipeline")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _BlockVariables(settings_cls), env_settings, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_names(cls, data: Any) -> Any:
        return fold_flat_names(data)
    # --- ComfyUI backend (issue 14); GPU time is priced by gpu_hour_usd above ---
    comfyui_url: str = Field(default="http://127.0.0.1:8188", description="ComfyUI server(s), comma-separated")
    comfyui_workflow: Path | None = Field(default=None, description="API-format workflow; None is the bundled SDXL one")
    comfyui_max_job_seconds: float = Field(default=600.0, gt=0, le=86400, allow_inf_nan=False,
                                           description="a job running longer is interrupted; reserved per image")
    comfyui_queue_depth: int = Field(default=2, ge=1, le=32, description="our prompts queued or running per server")
    # --- issue 16: many machines (object storage, provider limits shared by every run) -------------
    redis_url: str | None = Field(default=None, description="Redis for the shared provider limits (and the hub)")
    provider_limits: Literal["deployment", "run"] = Field(
        default="deployment", description="where the create rate and in-flight limit hold: every run together, or each run")
    provider_max_concurrency: int = Field(default=32, ge=1, le=10_000,
                                          description="most predictions in flight at the provider, all runs together")
    adaptive_concurrency: bool = Field(default=True, description="lower the in-flight limit on 429s, timeouts, slowdowns")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """Only Redis URLs; the reason never repeats the URL (it may hold a password)."""
        if value and value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise ValueError("expected redis://[:PASSWORD@]HOST[:PORT]/DB, rediss://... or unix://PATH")
        return value or None

    # --- Prompts from briefs (issue 15): the `prompts` asset's expander and its LLM ---
    prompts: Literal["template", "llm"] = Field(default="template", description="who writes prompts from briefs")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible API base URL; None is OpenAI's")
    llm_model: str = Field(default="gpt-4o-mini", min_length=1, max_length=200, description="LLM that writes prompts")
    llm_temperature: float = Field(default=0.7, ge=0, le=2, description="sampling temperature of the LLM")
    llm_max_tokens: int = Field(default=400, ge=16, le=8192, description="answer limit; reserved in full before a call")
    llm_timeout_s: float = Field(default=60.0, gt=0, le=600, allow_inf_nan=False, description="deadline of one LLM call")
    llm_max_attempts: int = Field(default=4, ge=1, le=10, description="LLM calls per prompt, retries included")
    llm_prices: str | None = Field(default=None, description='JSON {"model": [input, output]} USD per million tokens')
    prompts_max_concurrency: int = Field(default=8, ge=1, le=64, description="prompts written at once in one run")

    @field_validator("llm_prices")
    @classmethod
    def _price_table(cls, value: str | None) -> str | None:
        if value:
            from asset_pipeline.prompting.pricing import parse_price_table

            parse_price_table(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        return check_database_url(value) if value else value

    @property
    def catalog_file(self) -> str | None:
        """The catalog file as the loader takes it; None is the bundled catalog."""
        return str(self.catalog) if self.catalog else None

    def load_catalog(self) -> Catalog:
        """The configured catalog (ASSET_PIPELINE_CATALOG), validated; `CatalogError` names each problem."""
        return load_catalog(self.catalog_file)

    @property
    def ledger_url(self) -> str:
        if not self.database_url and is_object_url(self.data_dir):  # issue 16: no SQLite file on object storage
            raise ConfigurationError("ASSET_PIPELINE_DATABASE_URL", "required when ASSET_PIPELINE_DATA_DIR is an s3:// "
                                     "URL: the ledger cannot live on object storage; give a PostgreSQL URL (or a "
                                     "local sqlite:/// path for one machine)")
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"


def load_settings() -> PipelineSettings:
    """Read the environment; a bad value raises `ConfigurationError` naming the variable."""
    try:
        return PipelineSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(variable_of(first["loc"]), first["msg"].removeprefix("Value error, ")) from None


def variable_of(location: tuple[Any, ...]) -> str:
    """The environment variable behind a validation error's location, e.g. ('budget', 'total_usd')."""
    if not location:
        return "ASSET_PIPELINE_*"
    block = BLOCKS.get(str(location[0]))
    if block is not None and len(location) > 1:
        return block.variables().get(str(location[1]), "ASSET_PIPELINE_*")
    return "ASSET_PIPELINE_" + str(location[0]).upper()


def from_settings(name: str, convert: Callable[[Any], Any] = lambda value: value) -> Callable[[], Any]:
    """A pydantic `default_factory` reading setting `name` from the environment when a resource is built.

    Resource fields use it instead of a hard-coded default: Dagster then leaves the field out of a
    partial run config, so the field keeps the operator's value instead of a class default.
    """
    return lambda: convert(getattr(load_settings(), name))


def setting_field(name: str, convert: Callable[[Any], Any] = lambda value: value) -> Any:
    """A resource field declared by setting `name`: its bounds and description, the operator's value
    as default (`from_settings`). The resource states only the type."""
    declared = PipelineSettings.model_fields[name]
    info = Field(default_factory=from_settings(name, convert),
                 description=f"{declared.description} (ASSET_PIPELINE_{name.upper()}).")
    info.metadata = list(declared.metadata)
    return info

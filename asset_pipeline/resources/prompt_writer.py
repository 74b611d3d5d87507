"""The `prompt_writer` resource: run config -> a `PromptWriter` (prompting/writer.py).

Only the LLM's own settings live here; the ledger and the caps are the `image_generator`'s, handed
in by the `prompts` asset, so one set of caps (total, day, run) covers prompts and images.
The API key is bound with `dg.EnvVar` in `configured.py` (ASSET_PIPELINE_LLM_API_KEY, else
OPENAI_API_KEY), so Dagster stores only the variable's name.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
import openai
from pydantic import Field

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.ledger.budget_ledger import BudgetLedger
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline.prompting.cache import PromptCache
from asset_pipeline.prompting.pricing import DEFAULT_LLM_PRICES, parse_price_table
from asset_pipeline.prompting.writer import PromptWriter, WriterPolicy
from asset_pipeline.resources.run_config_guard import configuration_failure, enforce_operator_config
from asset_pipeline.settings import from_settings

FIXED_FIELDS = {
    "expander": "ASSET_PIPELINE_PROMPTS",
    "base_url": "ASSET_PIPELINE_LLM_BASE_URL",
    "api_key": "ASSET_PIPELINE_LLM_API_KEY",
    "prices_json": "ASSET_PIPELINE_LLM_PRICES",
    "model": "ASSET_PIPELINE_LLM_MODEL",
}
CEILINGS = {"max_tokens": "ASSET_PIPELINE_LLM_MAX_TOKENS", "max_attempts": "ASSET_PIPELINE_LLM_MAX_ATTEMPTS"}


class PromptWriterResource(dg.ConfigurableResource):
    """Writes prompts from briefs: `template` (offline, free) or `llm` (an OpenAI-compatible API)."""

    expander: Literal["template", "llm"] = Field(default_factory=from_settings("prompts"),
                                                 description="template or llm (ASSET_PIPELINE_PROMPTS).")
    base_url: str | None = Field(default_factory=from_settings("llm_base_url"),
                                 description="OpenAI-compatible base URL (ASSET_PIPELINE_LLM_BASE_URL).")
    model: str = Field(default_factory=from_settings("llm_model"), description="LLM model (ASSET_PIPELINE_LLM_MODEL).")
    api_key: str | None = Field(default_factory=lambda: None,
                                description="API key; bind with dg.EnvVar (ASSET_PIPELINE_LLM_API_KEY or OPENAI_API_KEY).")
    temperature: float = Field(default_factory=from_settings("llm_temperature"), ge=0, le=2,
                               description="Sampling temperature (ASSET_PIPELINE_LLM_TEMPERATURE).")
    max_tokens: int = Field(default_factory=from_settings("llm_max_tokens"), ge=16, le=8192,
                            description="Answer limit, reserved in full (ASSET_PIPELINE_LLM_MAX_TOKENS); may only be lowered.")
    timeout_s: float = Field(default_factory=from_settings("llm_timeout_s"), gt=0, le=600,
                             description="Deadline of one call (ASSET_PIPELINE_LLM_TIMEOUT_S).")
    max_attempts: int = Field(default_factory=from_settings("llm_max_attempts"), ge=1, le=10,
                              description="Calls per prompt, retries included (ASSET_PIPELINE_LLM_MAX_ATTEMPTS).")
    backoff_base_s: float = Field(default_factory=from_settings("backoff_base_s"), ge=0,
                                  description="First backoff after a 5xx or timeout without Retry-After.")
    max_concurrency: int = Field(default_factory=from_settings("prompts_max_concurrency"), ge=1, le=64,
                                 description="Prompts written at once (ASSET_PIPELINE_PROMPTS_MAX_CONCURRENCY).")
    prices_json: str | None = Field(default_factory=from_settings("llm_prices"),
                                    description="Extra prices, JSON (ASSET_PIPELINE_LLM_PRICES); fixed by the operator.")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        enforce_operator_config(self, context, label="prompt_writer", fixed=FIXED_FIELDS, ceilings=CEILINGS)
        if self.expander == "llm" and not self.api_key:
            raise configuration_failure(ConfigurationError(
                "ASSET_PIPELINE_LLM_API_KEY", "ASSET_PIPELINE_PROMPTS=llm needs an API key "
                "(ASSET_PIPELINE_LLM_API_KEY or OPENAI_API_KEY)"))

    def prices(self) -> dict:
        table = dict(DEFAULT_LLM_PRICES)
        if self.prices_json:
            table.update(parse_price_table(self.prices_json))
        return table

    def writer(self, *, ledger: BudgetLedger | None, caps: BudgetCaps, data_dir: str) -> PromptWriter:
        """A writer for one run, sharing `ledger` and `caps` with the image generator."""
        policy = WriterPolicy(expander=self.expander, model=self.model, temperature=self.temperature,
                              max_tokens=self.max_tokens, timeout_s=self.timeout_s, max_attempts=self.max_attempts,
                              backoff_base_s=self.backoff_base_s)
        api_key, base_url, timeout = self.api_key, self.base_url, self.timeout_s

        def client() -> openai.OpenAI:
            return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

        return PromptWriter(policy, cache=PromptCache(data_dir), ledger=ledger if self.expander == "llm" else None,
                            caps=caps, prices=self.prices(), client_factory=client if self.expander == "llm" else None,
                            secrets=(api_key,) if api_key else ())

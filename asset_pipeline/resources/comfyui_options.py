"""Run config of the ComfyUI backend (ASSET_PIPELINE_COMFYUI_*), and the backend built from it."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from asset_pipeline.generation.comfyui_backend import ComfyUIBackend, ComfyUIConfig
from asset_pipeline.generation.comfyui_servers import parse_urls
from asset_pipeline.generation.comfyui_workflow import load_workflow
from asset_pipeline.settings import from_settings


class ComfyUIOptions(dg.Config):
    """Where the ComfyUI servers are and which workflow they run; defaults come from the settings,
    so a partial run config keeps the operator's values."""

    urls: str = Field(default_factory=from_settings("comfyui_url"),
                      description="Comma-separated ComfyUI base URLs (ASSET_PIPELINE_COMFYUI_URL); fixed by the operator.")
    workflow: str | None = Field(
        default_factory=from_settings("comfyui_workflow", lambda path: str(path) if path else None),
        description="API-format workflow file with a `<stem>.mapping.yaml` beside it (ASSET_PIPELINE_COMFYUI_WORKFLOW); "
        "None is the bundled SDXL text-to-image workflow; fixed by the operator.")
    gpu_hour_usd: float = Field(default_factory=from_settings("diffusers", lambda block: block.gpu_hour_usd), ge=0,
                                description="Price of one GPU hour (ASSET_PIPELINE_GPU_HOUR_USD); fixed by the operator.")
    max_job_seconds: float = Field(default_factory=from_settings("comfyui_max_job_seconds"), gt=0, le=86400,
                                   description="A job running longer is interrupted; each image reserves this long.")
    queue_depth: int = Field(default_factory=from_settings("comfyui_queue_depth"), ge=1, le=32,
                             description="Our prompts queued or running at one server (ASSET_PIPELINE_COMFYUI_QUEUE_DEPTH).")


def build_comfyui_backend(options: ComfyUIOptions, *, poll_interval_s: float, max_download_bytes: int,
                          download_timeout_s: float, max_output_pixels: int) -> ComfyUIBackend:
    """Raises `ConfigurationError` naming the variable and file for a bad URL, workflow or mapping."""
    return ComfyUIBackend(ComfyUIConfig(
        urls=parse_urls(options.urls), workflow=load_workflow(options.workflow), gpu_hour_usd=options.gpu_hour_usd,
        max_job_seconds=options.max_job_seconds, queue_depth=options.queue_depth, poll_interval_s=poll_interval_s,
        max_download_bytes=max_download_bytes, download_timeout_s=download_timeout_s,
        max_output_pixels=max_output_pixels,
    ))

"""`asset-pipeline hub`: serve the WebSocket hub and dashboard (Starlette under uvicorn)."""

from __future__ import annotations

import os

import click

from asset_pipeline.hub.access import check_bind


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4500, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--ping-interval", default=20.0, show_default=True, type=click.FloatRange(0.1), help="Seconds between pings.")
def hub(host: str, port: int, ping_interval: float) -> None:
    """Live progress: WebSocket channels, the publisher endpoint and the dashboard page.

    Without ASSET_PIPELINE_HUB_TOKEN only a loopback address is allowed.
    """
    import uvicorn

    from asset_pipeline.cli.hub_startup import initial_state, shared_stream, spend_source, state_limits
    from asset_pipeline.cli.review_startup import review_backend
    from asset_pipeline.errors import ConfigurationError
    from asset_pipeline.hub.review_routes import mount_review_routes
    from asset_pipeline.hub.server import WS_OPTIONS, HubConfig, build_hub_app
    from asset_pipeline.settings import load_settings

    token = os.environ.get("ASSET_PIPELINE_HUB_TOKEN") or None
    check_bind(host, token)
    settings = load_settings()
    try:
        limits = state_limits()
        redis_url, redis_prefix = shared_stream()
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    state = initial_state(settings, echo=lambda line: click.echo(line, err=True), limits=limits)
    config = HubConfig(token=token, ping_interval_s=ping_interval, image_root=settings.data_dir,
                       spend_source=spend_source(settings), max_connections=limits.max_connections,
                       redis_url=redis_url, redis_prefix=redis_prefix)
    shared = f", events shared through Redis under '{redis_prefix}'" if redis_url else ""
    click.echo(f"hub listening on http://{host}:{port}/ (token {'required' if token else 'not set'}{shared})", err=True)
    app = build_hub_app(config, state)
    with review_backend(settings, echo=lambda line: click.echo(line, err=True)) as reviews:  # the review view
        if reviews is not None:
            mount_review_routes(app, reviews, token=token, image_root=settings.data_dir)
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on", **WS_OPTIONS)

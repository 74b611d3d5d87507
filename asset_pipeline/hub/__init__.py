"""The progress hub: a Starlette WebSocket server that fans publisher events out to subscribers."""

"""uvicorn's sans-I/O WebSocket protocol, plus one way to write an already-framed message.

ASGI can only send text, which uvicorn then encodes and frames once per connection, and the app
must await each send from a task per subscriber. For a message that goes to a thousand
subscribers that is a thousand encodes, frames and task switches for the same bytes. This
subclass adds a scope extension, `asset_pipeline.write_frame`, whose `write(frame)` puts bytes
framed once (`connections.frame`, the `websockets` library's own `Frame.serialize`) straight on the
transport and returns how many bytes wait in its buffer, the way `websockets.broadcast` writes one
frame to every connection without awaiting. uvicorn and Starlette offer no such hook, hence the
subclass; everything else (handshake, reading, close, ping) stays uvicorn's.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

WRITE_FRAME_EXTENSION = "asset_pipeline.write_frame"


class BroadcastProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][WRITE_FRAME_EXTENSION] = {"write": self.write_frame}  # type: ignore[index]

    def write_frame(self, frame: bytes) -> int | None:
        """Write one unmasked server frame; the bytes now buffered, or None once closing."""
        if not self.handshake_complete or self.close_sent or self.disconnected or self.transport.is_closing():
            return None
        self.transport.write(frame)
        return self.transport.get_write_buffer_size()

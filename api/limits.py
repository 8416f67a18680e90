"""The largest request body the API reads (WEIBAO_API_MAX_BODY, 1 MiB by default): a
larger one is answered 413 before it is read whole. A declared Content-Length over the
limit is refused before the app sees the request; a body streamed without one is counted
as it arrives and refused at the first byte over."""
from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import body


class BodyTooLarge(HTTPException):
    """Raised while the body is read; the app's handler answers it (api.errors)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # the rest of the body is never read: the connection cannot carry another request
            await JSONResponse(body("too_large", BodyTooLarge(self.max_bytes).detail, "body"), status_code=413,
                               headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None

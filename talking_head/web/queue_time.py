"""How long a request waited in the app's queue before its handler ran.

One render runs at a time; the others wait. :class:`ArrivalTimes`, an ASGI
middleware, notes when each HTTP request reached the server (the queue's
join request is the one a handler later receives); :func:`queue_seconds`
reads it back in the handler. The status line shows the wait when it is at
least :data:`MIN_SHOWN_WAIT_S`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

ARRIVED_KEY = "talking_head_arrived"  # key in the ASGI scope's "state": time.monotonic() at arrival
MIN_SHOWN_WAIT_S = 0.5  # shorter waits are not worth a word in the status line
QUEUE_STAGE = "waiting in the queue"  # its name among the status line's timings

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ArrivalTimes:
    """ASGI middleware: stamps every HTTP request's scope with its arrival time (``time.monotonic()``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[ARRIVED_KEY] = time.monotonic()
        await self.app(scope, receive, send)


def queue_seconds(http_request: Any, now: float | None = None) -> float | None:
    """Seconds since ``http_request`` (a Starlette request, or anything with ``.scope``) arrived; None unknown."""
    scope = getattr(http_request, "scope", None)
    arrived = scope.get("state", {}).get(ARRIVED_KEY) if isinstance(scope, dict) else None
    if arrived is None:
        return None
    return max(0.0, (time.monotonic() if now is None else now) - arrived)


def with_queue_time(timings: dict[str, float], waited: float | None) -> dict[str, float]:
    """``timings`` with the wait first (:data:`QUEUE_STAGE`), when it is worth showing."""
    if waited is None or waited < MIN_SHOWN_WAIT_S:
        return dict(timings)
    return {QUEUE_STAGE: waited, **timings}

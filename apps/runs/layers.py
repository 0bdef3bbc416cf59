"""The embedded mode's channel layer.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the ASGI server's event
loop. A Celery worker thread that publishes through ``async_to_sync`` runs on another loop,
so the server would only notice the message on its next timer tick (measured: p50 ≈ 50 ms,
up to 1.6 s; shared/notes/embedded-mode.md). This layer hands every send to the server's
loop instead, which wakes the waiting consumer at once.
"""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _server_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel):
        self._server_loop = asyncio.get_running_loop()  # consumers receive on the server loop
        return await super().receive(channel)

    async def _on_server_loop(self, coroutine):
        target = self._server_loop
        if target is None or target is asyncio.get_running_loop() or target.is_closed():
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, target))

    async def send(self, channel, message):
        return await self._on_server_loop(super().send(channel, message))

    async def group_send(self, group, message):
        return await self._on_server_loop(super().group_send(group, message))

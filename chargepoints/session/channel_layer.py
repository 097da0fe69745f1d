"""The channel layer of several server processes: channels-redis that waits out a Redis outage.

channels-redis raises from ``receive()`` when Redis is unreachable, and Channels'
consumer ends on it: every WebSocket session of every process would close with
1011 while Redis restarts. This subclass retries ``receive()`` with a capped
backoff instead, so sessions (and their OCPP traffic, which needs no Redis) go on.
A Redis that comes back empty (restarted without persistence) has forgotten the
groups, so the layer remembers the memberships of this process and adds them
again once Redis answers: commands across processes then work again by themselves.
"""

from __future__ import annotations

import asyncio
import logging

from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

#: Longest pause between two attempts to reach Redis again (seconds).
MAX_RETRY_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """A RedisChannelLayer whose sessions survive Redis being stopped and restarted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: group -> channels of this process in it, to add again after an outage.
        self.memberships: dict[str, set[str]] = {}
        self._recovery: asyncio.Task | None = None

    @property
    def unreachable(self) -> bool:
        return self._recovery is not None and not self._recovery.done()

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.memberships.setdefault(group, set()).add(channel)

    async def group_discard(self, group: str, channel: str) -> None:
        members = self.memberships.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.memberships[group]
        await super().group_discard(group, channel)

    async def receive(self, channel: str) -> dict:
        delay = 0.2
        while True:
            try:
                return await super().receive(channel)
            except (OSError, RedisError) as exc:
                self._outage(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _outage(self, exc: BaseException) -> None:
        """Start (once per outage) the task that waits for Redis and restores the groups."""
        if self.unreachable:
            return
        logger.warning("Redis is unreachable (%s); sessions go on, commands across processes wait", exc)
        self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
            try:
                for index in range(self.ring_size):
                    await self.connection(index).ping()
                for group, channels in list(self.memberships.items()):
                    for channel in list(channels):
                        await super().group_add(group, channel)
            except (OSError, RedisError):
                continue
            logger.warning(
                "Redis is reachable again; %d group membership(s) restored",
                sum(len(channels) for channels in self.memberships.values()),
            )
            return

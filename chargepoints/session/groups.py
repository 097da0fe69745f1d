"""A session's place in its charge point's channel-layer group (with REDIS_URL).

Commands sent through the API of another server process reach the session through
the group ``cp.<id>`` (chargepoints.commands), and a session joining it closes the
charge point's older session in another process. The consumer receives the group's
events on its own channel, which Channels dispatches to its handlers; a session
served the spec's third way (``Session.start()``) has no consumer, so it
listens on a channel of its own (``listen``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from . import commands, registry
from .registry import CLOSE_REPLACED

if TYPE_CHECKING:
    from .base import Session

logger = logging.getLogger(__name__)

#: channels-redis drops group members after ``group_expiry`` (a day by default).
REFRESH_SECONDS = 3600


class CommandGroup:
    """Membership of ``session`` in its group, as ``channel_name`` of ``layer``."""

    def __init__(self, session: Session, layer, channel_name: str):
        self.session = session
        self.layer = layer
        self.channel_name = channel_name
        self.name = commands.group_name(session.id)
        #: The refresh and receive loops, ended by leave().
        self._loops: list[asyncio.Task] = []
        #: Routed commands being run; they end with the session.
        self._commands: set[asyncio.Task] = set()

    @classmethod
    async def join(cls, session: Session, layer, channel_name: str) -> CommandGroup | None:
        """Take over the charge point's group (its session elsewhere is closed); None on failure."""
        group = cls(session, layer, channel_name)
        try:
            await layer.group_send(group.name, {"type": "session.replaced", "channel": channel_name})
            await layer.group_add(group.name, channel_name)
        except Exception:
            logger.exception("%s: cannot join channel layer group %s", session.id, group.name)
            return None
        group._loops.append(asyncio.create_task(group._refresh_forever()))
        return group

    @classmethod
    async def listen(cls, session: Session, layer) -> CommandGroup | None:
        """Join on a channel of the session's own, and handle the group's events as they come."""
        group = await cls.join(session, layer, await layer.new_channel())
        if group is not None:
            group._loops.append(asyncio.create_task(group._receive_forever()))
        return group

    async def leave(self) -> None:
        for task in self._loops:
            task.cancel()
        try:
            await self.layer.group_discard(self.name, self.channel_name)
        except Exception:
            logger.exception("%s: leaving group %s failed", self.session.id, self.name)

    async def handle(self, event: dict) -> None:
        """An event of the group: a routed command, or the charge point's newer session."""
        if registry.get(self.session.id) is not self.session:
            return
        if event["type"] == "ocpp.command":
            # A task: the receive path must stay free to deliver the charge point's answer.
            task = asyncio.create_task(commands.serve_routed_command(self.session, self.layer, event))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)
        elif event["type"] == "session.replaced" and event["channel"] != self.channel_name:
            logger.info("%s reconnected to another server process; closing this session", self.session.id)
            self.session.mark_replaced()  # its writes not yet in a batch are dropped
            registry.unregister(self.session)  # so that the disconnect leaves the new session's row alone
            await self.session.close(CLOSE_REPLACED)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.layer.group_add(self.name, self.channel_name)
            except Exception:
                logger.exception("%s: refreshing group %s failed", self.session.id, self.name)

    async def _receive_forever(self) -> None:
        while True:
            event = await self.layer.receive(self.channel_name)
            try:
                await self.handle(event)
            except Exception:
                logger.exception("%s: handling %s failed", self.session.id, event.get("type"))

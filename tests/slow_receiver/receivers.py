"""A synchronous hook receiver that blocks its thread, as a careless app's would."""

from __future__ import annotations

import logging
import time

from django.dispatch import receiver

from plugins.signals import before_heartbeat

#: Charge points whose Heartbeat the receiver holds up.
SLOW_PREFIX = "SLOW-"
SECONDS = 3

logger = logging.getLogger(__name__)


@receiver(before_heartbeat, dispatch_uid="tests.slow_receiver.before_heartbeat")
def sleep_before_heartbeat(sender, charge_point, context, hook, **kwargs):
    if charge_point.id.startswith(SLOW_PREFIX):
        logger.info("holding up the Heartbeat of %s for %s s", charge_point.id, SECONDS)
        time.sleep(SECONDS)

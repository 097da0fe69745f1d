"""Example plugins: deciding answers, calling the charge point, misbehaving."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from django.utils import timezone
from ocpp.v16 import call

from plugins.base import ChargePointPlugin, PluginContext, PluginHook
from transactions.models import Transaction

BLOCKED = {"status": "Blocked"}


# --- deciding the answer (docs/plugins.md, "Deciding the answer") -------------------


class MaintenancePlugin(ChargePointPlugin):
    """Refuse charging while connectors are under maintenance.

    ``connectors``: the connector ids under maintenance; none given = the whole
    charge point, which then also refuses Authorize. Enable it only for the charge
    points concerned (the ``charge_points`` key of its LEVITY_PLUGINS entry).
    """

    def __init__(self, connectors: list[int] | None = None) -> None:
        super().__init__()
        self.connectors = set(connectors) if connectors else None

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.BEFORE_AUTHORIZE: "refuse_authorize",
            PluginHook.BEFORE_START_TRANSACTION: "refuse_start",
        }

    async def refuse_authorize(self, context: PluginContext) -> None:
        if self.connectors is None:
            context.respond({"id_tag_info": BLOCKED})

    async def refuse_start(self, context: PluginContext) -> None:
        if self.connectors is None or context.message_data["connector_id"] in self.connectors:
            context.respond({"id_tag_info": BLOCKED})


class RateLimitPlugin(ChargePointPlugin):
    """Refuse an ID tag that started ``max_transactions`` in the last ``per_seconds``."""

    def __init__(self, max_transactions: int = 3, per_seconds: float = 3600) -> None:
        super().__init__()
        if max_transactions < 1 or per_seconds <= 0:
            raise ValueError("max_transactions must be at least 1 and per_seconds positive")
        self.max_transactions = max_transactions
        self.per_seconds = per_seconds

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.BEFORE_AUTHORIZE: "limit",
            PluginHook.BEFORE_START_TRANSACTION: "limit",
        }

    async def limit(self, context: PluginContext) -> None:
        id_tag = context.message_data["id_tag"]
        since = timezone.now() - timedelta(seconds=self.per_seconds)
        started = await Transaction.objects.filter(id_tag=id_tag, received_at__gte=since).acount()
        if started >= self.max_transactions:
            self.logger.info("%s started %s transactions recently: refused", id_tag, started)
            context.respond({"id_tag_info": BLOCKED})


class AcceptEveryonePlugin(ChargePointPlugin):
    """Free vend: accept every ID tag, known or not."""

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.BEFORE_AUTHORIZE: "accept",
            PluginHook.BEFORE_START_TRANSACTION: "accept",
        }

    async def accept(self, context: PluginContext) -> None:
        context.respond({"id_tag_info": {"status": "Accepted"}})


# --- calling the charge point from hooks ---------------------------------------------


class IntervalFromChargePointPlugin(ChargePointPlugin):
    """BEFORE BootNotification: ask the charge point for a configuration key and
    answer the boot with that value as the heartbeat interval."""

    def __init__(self, key: str = "MeterValueSampleInterval") -> None:
        super().__init__()
        self.key = key

    def hooks(self) -> dict[PluginHook, str]:
        return {PluginHook.BEFORE_BOOT_NOTIFICATION: "adopt_interval"}

    async def adopt_interval(self, context: PluginContext) -> None:
        response = await context.charge_point.call(call.GetConfiguration(key=[self.key]))
        for item in response.configuration_key or ():
            if item["key"] == self.key:
                context.respond({"interval": int(item["value"])})


class ReportBackPlugin(ChargePointPlugin):
    """AFTER BootNotification: read the charge point's configuration, then send it,
    with the boot answer, back in a DataTransfer (vendor "org.levity.test")."""

    def hooks(self) -> dict[PluginHook, str]:
        return {PluginHook.AFTER_BOOT_NOTIFICATION: "report"}

    async def report(self, context: PluginContext) -> None:
        configuration = await context.charge_point.call(call.GetConfiguration())
        report = {
            "boot_status": context.result.status,
            "keys": {item["key"]: item["value"] for item in configuration.configuration_key},
        }
        await context.charge_point.call(
            call.DataTransfer(vendor_id="org.levity.test", message_id="report", data=json.dumps(report))
        )


class TriggerOnConnectPlugin(ChargePointPlugin):
    """initialize(): ask the charge point for its StatusNotifications (TriggerMessage)."""

    async def initialize(self, charge_point) -> None:
        response = await charge_point.call(call.TriggerMessage(requested_message="StatusNotification"))
        self.logger.info("%s answered TriggerMessage: %s", charge_point.id, response.status)


def create_plugins() -> list[ChargePointPlugin]:
    """A LEVITY_PLUGIN_FACTORY: called once per connection."""
    return [ReportBackPlugin()]


def not_a_factory_result() -> object:
    """A broken LEVITY_PLUGIN_FACTORY: it returns no list of plugins."""
    return "ReportBackPlugin"


# --- misbehaving plugins ----------------------------------------------------------------


class FailingPlugin(ChargePointPlugin):
    """Raises in every hook it has."""

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.BEFORE_AUTHORIZE: "fail",
            PluginHook.AFTER_AUTHORIZE: "fail",
            PluginHook.BEFORE_BOOT_NOTIFICATION: "fail",
            PluginHook.AFTER_BOOT_NOTIFICATION: "fail",
        }

    async def fail(self, context: PluginContext) -> None:
        hook = context.hook.value if context.hook else "a hook"
        raise RuntimeError(f"FailingPlugin fails {hook} on purpose")


class HangingPlugin(ChargePointPlugin):
    """Never returns from its hooks."""

    def hooks(self) -> dict[PluginHook, str]:
        return {
            PluginHook.BEFORE_AUTHORIZE: "hang",
            PluginHook.AFTER_BOOT_NOTIFICATION: "hang",
        }

    async def hang(self, context: PluginContext) -> None:
        await asyncio.Event().wait()


class MisspelledHookPlugin(ChargePointPlugin):
    """Its hooks() names a method it does not have."""

    def hooks(self) -> dict[PluginHook, str]:
        return {PluginHook.AFTER_HEARTBEAT: "on_heartbaet"}

    async def on_heartbeat(self, context: PluginContext) -> None:
        pass

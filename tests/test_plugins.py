"""The plugin framework: hooks, decisions, isolation, calls to the charge point, configuration.

Two kinds of test: sessions run in this process with ``plugins.testing`` (what plugin
authors use; precise about order), and real daphne servers configured through the
environment, with the ``ocpp`` package as the charge point. The built-in plugins
have their own modules in tests/plugins/.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from ocpp.v16 import call, call_result

from chargepoints.models import ChargePoint, SecurityEvent, StatusNotification
from chargepoints.ocpp16 import protocol
from chargepoints.ocpp16.session import ChargePointDisconnected, LevityChargePoint
from plugins import AutoRemoteStartPlugin, OrphanedTransactionPlugin, signals
from plugins.base import PLUGIN_API_VERSION, ChargePointPlugin, PluginContext, PluginHook
from plugins.loading import api_version_problem
from plugins.testing import (
    FakeConnection,
    after_hooks_done,
    create_test_charge_point,
    register_temporarily,
)
from tests.conftest import PROJECT_DIR, DaphneServer, server_env
from tests.ocpp_client import OCPPClient
from tests.sample_plugins.plugins import (
    AcceptEveryonePlugin,
    FailingPlugin,
    HangingPlugin,
    MaintenancePlugin,
    RateLimitPlugin,
    ReportBackPlugin,
)
from transactions.models import IdTag, MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

START_TIME = "2026-03-01T10:00:00.000Z"
STOP_TIME = "2026-03-01T11:00:00.000Z"


def new_id() -> str:
    return f"T-{uuid.uuid4().hex[:10]}"


def utc(text: str) -> datetime:
    return protocol.parse_timestamp(text)


async def make_transaction(cp: LevityChargePoint, **fields: Any) -> Transaction:
    values = {
        "connector_id": 1,
        "id_tag": "TAG-1",
        "id_tag_status": "Accepted",
        "meter_start": 100,
        "start_timestamp": utc(START_TIME),
    }
    values.update(fields)
    assert cp.charge_point_pk is not None
    return await Transaction.objects.acreate(charge_point_id=cp.charge_point_pk, **values)


# --- every hook: BEFORE -> core -> answer -> AFTER --------------------------------------


@dataclass
class Seen:
    hook: PluginHook | None
    message_data: dict
    result: Any
    answered: bool
    persisted: bool | None


class Recorder(ChargePointPlugin):
    """Records each hook: what it got, whether the answer was sent, whether the core had run."""

    def __init__(self, probe=None) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.probe = probe

    def hooks(self) -> dict[PluginHook, str]:
        return dict.fromkeys(PluginHook, "record")

    async def record(self, context: PluginContext) -> None:
        cp = context.charge_point
        self.seen.append(
            Seen(
                hook=context.hook,
                message_data=copy.deepcopy(context.message_data),
                result=context.result,
                answered=any(frame[0] == 3 for frame in cp.connection.sent),
                persisted=await self.probe(cp) if self.probe else None,
            )
        )


@dataclass
class Case:
    action: str
    payload: dict
    message_data: dict
    probe: Any  # async (cp) -> bool | None: has the core handler persisted the message?
    needs_transaction: bool = False


async def booted(cp):
    return (await ChargePoint.objects.aget(pk=cp.charge_point_pk)).last_boot_at is not None


async def heartbeat_seen(cp):
    return cp.last_heartbeat_at is not None


async def status_stored(cp):
    return await StatusNotification.objects.filter(charge_point_id=cp.charge_point_pk).aexists()


async def nothing_stored(cp):
    return None


async def transaction_stored(cp):
    return await Transaction.objects.filter(charge_point_id=cp.charge_point_pk).aexists()


async def transaction_stopped(cp):
    return await Transaction.objects.filter(
        charge_point_id=cp.charge_point_pk, stop_timestamp__isnull=False
    ).aexists()


async def meter_values_stored(cp):
    return await MeterValue.objects.filter(charge_point_id=cp.charge_point_pk).aexists()


async def security_event_stored(cp):
    return await SecurityEvent.objects.filter(charge_point_id=cp.charge_point_pk).aexists()


SAMPLED = [{"timestamp": START_TIME, "sampledValue": [{"value": "150", "unit": "Wh"}]}]
SAMPLED_SNAKE = [{"timestamp": START_TIME, "sampled_value": [{"value": "150", "unit": "Wh"}]}]

CASES = [
    Case(
        "BootNotification",
        {"chargePointVendor": "Acme", "chargePointModel": "AC-22", "firmwareVersion": "1.0"},
        {"charge_point_vendor": "Acme", "charge_point_model": "AC-22", "firmware_version": "1.0"},
        booted,
    ),
    Case(
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Preparing", "vendorErrorCode": "E0"},
        {
            "connector_id": 1,
            "error_code": "NoError",
            "status": "Preparing",
            "vendor_error_code": "E0",
        },
        status_stored,
    ),
    Case(
        "StartTransaction",
        {
            "connectorId": 1,
            "idTag": "TAG-1",
            "meterStart": 100,
            "timestamp": START_TIME,
            "reservationId": 7,
        },
        {
            "connector_id": 1,
            "id_tag": "TAG-1",
            "meter_start": 100,
            "timestamp": START_TIME,
            "reservation_id": 7,
        },
        transaction_stored,
    ),
    Case(
        "StopTransaction",
        {
            "transactionId": None,
            "meterStop": 250,
            "timestamp": STOP_TIME,
            "reason": "EVDisconnected",
            "transactionData": SAMPLED,
        },
        {
            "transaction_id": None,
            "meter_stop": 250,
            "timestamp": STOP_TIME,
            "reason": "EVDisconnected",
            "transaction_data": SAMPLED_SNAKE,
        },
        transaction_stopped,
        needs_transaction=True,
    ),
    Case("Heartbeat", {}, {}, heartbeat_seen),
    Case(
        "MeterValues",
        {"connectorId": 1, "meterValue": SAMPLED},
        {"connector_id": 1, "meter_value": SAMPLED_SNAKE},
        meter_values_stored,
    ),
    Case("Authorize", {"idTag": "TAG-1"}, {"id_tag": "TAG-1"}, nothing_stored),
    Case(
        "SecurityEventNotification",
        {"type": "SettingSystemTime", "timestamp": START_TIME, "techInfo": "NTP"},
        {"type": "SettingSystemTime", "timestamp": START_TIME, "tech_info": "NTP"},
        security_event_stored,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.action for case in CASES])
async def test_hooks_run_before_the_core_and_after_the_answer_with_snake_case_data(case):
    recorder = Recorder(probe=case.probe)
    cp = await create_test_charge_point(new_id(), plugins=[recorder])
    payload, expected = dict(case.payload), dict(case.message_data)
    if case.needs_transaction:
        tx = await make_transaction(cp)
        payload["transactionId"] = expected["transaction_id"] = tx.pk

    answer = await cp.connection.call_from_charge_point(case.action, payload)
    await after_hooks_done(cp)

    assert answer[0] == 3
    before, after = recorder.seen
    assert (before.hook.is_before, after.hook.is_before) == (True, False)
    assert before.hook.action == after.hook.action == case.action
    assert before.message_data == after.message_data == expected
    # BEFORE: nothing persisted, no answer, no result yet.
    assert (before.answered, before.persisted, before.result) == (
        False,
        None if case.probe is nothing_stored else False,
        None,
    )
    # AFTER: persisted, answered, and result is the call_result that was sent.
    assert after.answered is True
    assert after.persisted is (None if case.probe is nothing_stored else True)
    assert isinstance(after.result, getattr(call_result, case.action))
    assert protocol.to_payload(after.result) == answer[2]


async def test_every_hook_signal_reaches_a_receiver_of_another_app():
    received: list[tuple[PluginHook, type, str, Any]] = []

    async def receiver(sender, charge_point, context, hook, **kwargs):
        received.append((hook, sender, charge_point.id, context.result))

    pairs = [(hook, receiver) for hook in PluginHook]
    cp = await create_test_charge_point(new_id())
    with register_temporarily(pairs):
        await cp.on_boot_notification("Acme", "AC-22")
        await cp.on_status_notification(1, "NoError", "Available")
        await cp.on_authorize("TAG-1")
        started = await cp.on_start_transaction(1, "TAG-1", 100, START_TIME)
        await cp.on_meter_values(1, SAMPLED_SNAKE, transaction_id=started.transaction_id)
        await cp.on_stop_transaction(200, STOP_TIME, started.transaction_id)
        await cp.on_heartbeat()
        await cp.on_security_event_notification("SettingSystemTime", START_TIME)
    assert {hook for hook, *_ in received} == set(PluginHook)
    assert len(received) == 16
    assert all(sender is LevityChargePoint and cp_id == cp.id for _, sender, cp_id, _ in received)
    assert all((result is None) == hook.is_before for hook, _, _, result in received)


async def test_a_sync_receiver_is_called_too():
    calls = []

    def receiver(sender, charge_point, context, **kwargs):
        calls.append(context.message_data)

    cp = await create_test_charge_point(new_id())
    with register_temporarily("before_authorize", receiver):
        await cp.on_authorize("TAG-9")
    assert calls == [{"id_tag": "TAG-9"}]


async def test_register_temporarily_disconnects_the_receiver_afterwards():
    calls = []

    async def receiver(sender, **kwargs):
        calls.append(kwargs["hook"])

    cp = await create_test_charge_point(new_id())
    with register_temporarily(PluginHook.AFTER_HEARTBEAT, receiver):
        await cp.on_heartbeat()
    await cp.on_heartbeat()
    assert calls == [PluginHook.AFTER_HEARTBEAT]
    assert len(signals.after_heartbeat.receivers) == 1  # only the plugin runner


async def test_a_hook_changing_message_data_does_not_change_what_is_stored():
    class Meddler(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.BEFORE_START_TRANSACTION: "meddle"}

        async def meddle(self, context):
            context.message_data["meter_start"] = "lots"
            context.message_data["connector_id"] = -5

    cp = await create_test_charge_point(new_id(), plugins=[Meddler()])
    result = await cp.on_start_transaction(1, "TAG-1", 100, START_TIME)
    tx = await Transaction.objects.aget(pk=result.transaction_id)
    assert (tx.connector_id, tx.meter_start) == (1, 100)


# --- the test helpers themselves, as docs/plugins.md shows them ---------------------------------


class BootWatcher(ChargePointPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.booted: list[tuple[str, str]] = []

    def hooks(self):
        return {PluginHook.AFTER_BOOT_NOTIFICATION: "on_boot_complete"}

    async def on_boot_complete(self, context):
        vendor = context.message_data.get("charge_point_vendor")
        self.booted.append((context.charge_point.id, vendor))
        self.logger.info("Charge point %s (%s) has booted!", context.charge_point.id, vendor)


async def test_create_test_charge_point_as_in_the_docs(caplog):
    plugin = BootWatcher()
    db_connection = None  # older suites pass one; the database is Django's
    cp = await create_test_charge_point("TEST001", db_connection, plugins=[plugin])
    with caplog.at_level(logging.INFO, logger="levity.plugins"):
        result = await cp.on_boot_notification("TestVendor", "TestModel")
    assert result.status == "Accepted" and result.interval == 300
    assert plugin.booted == [("TEST001", "TestVendor")]
    assert ("levity.plugins.BootWatcher", "Charge point TEST001 (TestVendor) has booted!") in [
        (r.name, r.getMessage()) for r in caplog.records
    ]
    row = await ChargePoint.objects.aget(charge_point_id="TEST001")
    assert (row.charge_point_vendor, row.charge_point_model) == ("TestVendor", "TestModel")


async def test_fake_connection_lets_a_test_answer_a_call_from_a_hook():
    class AskTime(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.AFTER_HEARTBEAT: "ask"}

        async def ask(self, context):
            self.answer = await context.charge_point.call(
                call.ChangeConfiguration(key="HeartbeatInterval", value="60")
            )

    plugin = AskTime()
    cp = await create_test_charge_point(new_id(), plugins=[plugin])
    heartbeat = asyncio.create_task(cp.on_heartbeat())
    sent = await cp.connection.wait_for_call("ChangeConfiguration")
    assert sent.payload == {"key": "HeartbeatInterval", "value": "60"}
    await cp.connection.reply(sent, {"status": "RebootRequired"})
    await heartbeat
    assert plugin.answer == call_result.ChangeConfiguration(status="RebootRequired")


# --- lifecycle --------------------------------------------------------------------------


class Lifecycle(ChargePointPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def hooks(self):
        return {PluginHook.BEFORE_HEARTBEAT: "on_heartbeat"}

    async def initialize(self, charge_point):
        self.events.append(f"initialize {charge_point.id}")

    async def on_heartbeat(self, context):
        self.events.append("heartbeat")

    async def cleanup(self, charge_point):
        self.events.append(f"cleanup {charge_point.id}")


async def test_initialize_runs_before_the_first_hook_and_cleanup_at_disconnect():
    plugin = Lifecycle()
    cp = await create_test_charge_point("LIFE-1", plugins=[plugin])
    await cp.connection.call_from_charge_point("Heartbeat", {})
    await cp.shutdown(1000)
    assert plugin.events == ["initialize LIFE-1", "heartbeat", "cleanup LIFE-1"]


async def test_initialize_may_call_the_charge_point_and_messages_wait_for_it():
    class AskFirst(Lifecycle):
        async def initialize(self, charge_point):
            answer = await charge_point.call(call.GetConfiguration(key=["HeartbeatInterval"]))
            self.events.append(f"configured {answer.configuration_key[0]['value']}")

    plugin = AskFirst()
    connection = FakeConnection()
    cp = LevityChargePoint(new_id(), connection, plugins=[plugin])
    connection.charge_point = cp
    await cp.ensure_registered(policy="accept")
    started = cp.begin()
    heartbeat = asyncio.create_task(connection.call_from_charge_point("Heartbeat", {}))
    sent = await connection.wait_for_call("GetConfiguration")
    await asyncio.sleep(0.05)
    assert plugin.events == []  # the heartbeat waits for initialize()
    await connection.reply(
        sent, {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "90"}]}
    )
    await started
    assert (await heartbeat)[0] == 3
    assert plugin.events == ["configured 90", "heartbeat"]


async def test_a_failing_initialize_is_logged_and_the_plugin_still_gets_its_hooks(caplog):
    class BadStart(Lifecycle):
        async def initialize(self, charge_point):
            raise ConnectionError("no backend")

    plugin = BadStart()
    cp = await create_test_charge_point(new_id(), plugins=[plugin])
    await cp.on_heartbeat()
    assert plugin.events == ["heartbeat"]
    record = next(r for r in caplog.records if r.name == "levity.plugins.BadStart")
    assert record.levelno == logging.ERROR and "initialize failed" in record.getMessage()


async def test_charge_point_connected_is_sent_after_initialize():
    events = []
    plugin = Lifecycle()

    async def connected(sender, charge_point, **kwargs):
        events.append((charge_point.id, list(plugin.events)))

    with register_temporarily("charge_point_connected", connected):
        await create_test_charge_point("SIG-1", plugins=[plugin])
    assert events == [("SIG-1", ["initialize SIG-1"])]


# --- error isolation ----------------------------------------------------------------------


class Witness(ChargePointPlugin):
    """Runs after a misbehaving plugin, to show that it still runs."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks_run: list[PluginHook] = []

    def hooks(self):
        return {PluginHook.BEFORE_AUTHORIZE: "witness", PluginHook.AFTER_AUTHORIZE: "witness"}

    async def witness(self, context):
        self.hooks_run.append(context.hook)


async def test_an_exception_in_a_plugin_is_logged_with_its_logger_and_changes_nothing(caplog):
    witness = Witness()
    cp = await create_test_charge_point(new_id(), plugins=[FailingPlugin(), witness])
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "NOBODY"})
    await after_hooks_done(cp)
    assert answer[2] == {"idTagInfo": {"status": "Invalid"}}
    assert witness.hooks_run == [PluginHook.BEFORE_AUTHORIZE, PluginHook.AFTER_AUTHORIZE]
    failures = [r for r in caplog.records if r.name == "levity.plugins.FailingPlugin"]
    assert [r.getMessage() for r in failures] == [
        f"BEFORE_AUTHORIZE hook failed for {cp.id}",
        f"AFTER_AUTHORIZE hook failed for {cp.id}",
    ]
    assert all(r.levelno == logging.ERROR and r.exc_info[0] is RuntimeError for r in failures)
    assert (await cp.connection.call_from_charge_point("Heartbeat", {}))[0] == 3


async def test_a_hanging_before_hook_is_cancelled_after_its_time_bound(settings, caplog):
    settings.LEVITY_BEFORE_HOOK_TIMEOUT = 0.2
    witness = Witness()
    cp = await create_test_charge_point(new_id(), plugins=[HangingPlugin(), witness])
    started = time.monotonic()
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "NOBODY"})
    assert 0.2 <= time.monotonic() - started < 2
    assert answer[2] == {"idTagInfo": {"status": "Invalid"}}
    assert PluginHook.BEFORE_AUTHORIZE in witness.hooks_run
    record = next(r for r in caplog.records if r.name == "levity.plugins.HangingPlugin")
    assert record.getMessage() == (
        f"BEFORE_AUTHORIZE hook for {cp.id} took longer than 0.2s and was cancelled"
    )


async def test_a_failing_receiver_of_another_app_is_logged_and_changes_nothing(caplog):
    async def broken(sender, **kwargs):
        raise KeyError("oops")

    cp = await create_test_charge_point(new_id())
    with register_temporarily(PluginHook.BEFORE_HEARTBEAT, broken):
        answer = await cp.connection.call_from_charge_point("Heartbeat", {})
    assert answer[0] == 3 and "currentTime" in answer[2]
    record = next(r for r in caplog.records if r.name == "django.dispatch")
    assert "broken" in record.getMessage() and record.exc_info[0] is KeyError


async def test_a_hanging_receiver_of_another_app_is_cut_off(settings, caplog):
    settings.LEVITY_BEFORE_HOOK_TIMEOUT = 0.2

    async def hang(sender, **kwargs):
        await asyncio.Event().wait()

    cp = await create_test_charge_point(new_id())
    with register_temporarily(PluginHook.BEFORE_HEARTBEAT, hang):
        answer = await cp.connection.call_from_charge_point("Heartbeat", {})
    assert answer[0] == 3
    assert any(
        r.name == "levity.plugins" and "before_heartbeat were still running" in r.getMessage()
        for r in caplog.records
    )


async def test_hooks_naming_a_missing_method_are_logged_and_the_others_run(caplog):
    class Typo(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.BEFORE_HEARTBEAT: "on_hartbeat", PluginHook.AFTER_HEARTBEAT: "after"}

        async def after(self, context):
            self.after_ran = True

    plugin = Typo()
    cp = await create_test_charge_point(new_id(), plugins=[plugin])
    await cp.on_heartbeat()
    assert plugin.after_ran
    assert any(
        r.name == "levity.plugins.Typo" and "'on_hartbeat', which is not a method" in r.getMessage()
        for r in caplog.records
    )


# --- deciding the answer ----------------------------------------------------------------------


async def test_a_maintenance_plugin_refuses_authorize():
    cp = await create_test_charge_point(new_id(), plugins=[MaintenancePlugin()])
    await IdTag.objects.acreate(id_tag="GOOD")
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "GOOD"})
    assert answer[2] == {"idTagInfo": {"status": "Blocked"}}


async def test_a_refused_start_still_gets_a_transaction_stored_with_the_decided_status():
    cp = await create_test_charge_point(new_id(), plugins=[MaintenancePlugin(connectors=[2])])
    await IdTag.objects.abulk_create([IdTag(id_tag="GOOD"), IdTag(id_tag="ALSO-GOOD")])
    start = {"connectorId": 2, "idTag": "GOOD", "meterStart": 10, "timestamp": START_TIME}
    answer = await cp.connection.call_from_charge_point("StartTransaction", start)
    tx = await Transaction.objects.aget(charge_point_id=cp.charge_point_pk)
    assert answer[2] == {"transactionId": tx.pk, "idTagInfo": {"status": "Blocked"}}
    assert tx.id_tag_status == "Blocked"
    other = {**start, "connectorId": 1, "idTag": "ALSO-GOOD"}
    answer = await cp.connection.call_from_charge_point("StartTransaction", other)
    assert answer[2]["idTagInfo"] == {"status": "Accepted"}  # connector 1 is not under maintenance


async def test_a_retried_start_gets_the_stored_answer_whatever_plugins_decide_now():
    rate_limit = RateLimitPlugin(max_transactions=1, per_seconds=600)
    cp = await create_test_charge_point(new_id(), plugins=[rate_limit])
    start = {"connectorId": 1, "idTag": "ONCE", "meterStart": 10, "timestamp": START_TIME}
    first = await cp.connection.call_from_charge_point("StartTransaction", start)
    retry = await cp.connection.call_from_charge_point("StartTransaction", start)
    assert first[2]["idTagInfo"] == {"status": "Invalid"}  # unknown tag, not rate limited yet
    assert retry[2] == first[2]
    assert await Transaction.objects.acount() == 1


async def test_a_rate_limit_plugin_refuses_the_tag_once_it_reached_its_limit():
    cp = await create_test_charge_point(new_id(), plugins=[RateLimitPlugin(max_transactions=2)])
    await IdTag.objects.acreate(id_tag="BUSY")
    for minute in range(2):
        start = {
            "connectorId": 1,
            "idTag": "BUSY",
            "meterStart": 0,
            "timestamp": f"2026-03-01T10:0{minute}:00Z",
        }
        answer = await cp.connection.call_from_charge_point("StartTransaction", start)
        await cp.on_stop_transaction(5, f"2026-03-01T10:0{minute}:30Z", answer[2]["transactionId"])
        assert answer[2]["idTagInfo"] == {"status": "Accepted"}
    authorize = await cp.connection.call_from_charge_point("Authorize", {"idTag": "BUSY"})
    start = {
        "connectorId": 1,
        "idTag": "BUSY",
        "meterStart": 0,
        "timestamp": "2026-03-01T10:05:00Z",
    }
    third = await cp.connection.call_from_charge_point("StartTransaction", start)
    assert authorize[2] == {"idTagInfo": {"status": "Blocked"}}
    assert third[2]["idTagInfo"] == {"status": "Blocked"}


@pytest.mark.parametrize("order", ["accept-first", "refuse-first"])
async def test_a_refusal_overrides_an_acceptance_in_either_order(order):
    plugins = [AcceptEveryonePlugin(), MaintenancePlugin()]
    if order == "refuse-first":
        plugins.reverse()
    cp = await create_test_charge_point(new_id(), plugins=plugins)
    seen = []

    async def after(sender, context, **kwargs):
        seen.append(context.decided_by)

    with register_temporarily(PluginHook.AFTER_AUTHORIZE, after):
        result = await cp.on_authorize("ANYONE")
    assert result.id_tag_info["status"] == "Blocked"
    assert seen == ["MaintenancePlugin"]


async def test_an_acceptance_decides_for_an_unknown_tag():
    cp = await create_test_charge_point(new_id(), plugins=[AcceptEveryonePlugin()])
    authorize = await cp.on_authorize("STRANGER")
    started = await cp.on_start_transaction(1, "STRANGER", 0, START_TIME)
    tx = await Transaction.objects.aget(pk=started.transaction_id)
    assert authorize.id_tag_info == {"status": "Accepted"}
    assert started.id_tag_info == {"status": "Accepted"} and tx.id_tag_status == "Accepted"


async def test_equal_decisions_keep_the_first():
    class Expire(ChargePointPlugin):
        def __init__(self, status):
            super().__init__()
            self.status = status

        def hooks(self):
            return {PluginHook.BEFORE_AUTHORIZE: "decide"}

        async def decide(self, context):
            self.stood = context.respond({"id_tag_info": {"status": self.status}})

    first, second = Expire("Expired"), Expire("Blocked")
    cp = await create_test_charge_point(new_id(), plugins=[first, second])
    result = await cp.on_authorize("TAG")
    assert result.id_tag_info == {"status": "Expired"}
    assert (first.stood, second.stood) == (True, False)


async def test_a_decision_on_boot_changes_only_the_fields_it_gives():
    class Gatekeeper(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.BEFORE_BOOT_NOTIFICATION: "hold"}

        async def hold(self, context):
            context.respond({"status": "Pending", "interval": 30})

    cp = await create_test_charge_point(new_id(), plugins=[Gatekeeper()])
    answer = await cp.connection.call_from_charge_point(
        "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X"}
    )
    assert answer[2]["status"] == "Pending" and answer[2]["interval"] == 30
    assert answer[2]["currentTime"].endswith("Z")
    row = await ChargePoint.objects.aget(pk=cp.charge_point_pk)
    assert row.charge_point_vendor == "Acme" and row.registration_status == "Accepted"


async def test_a_call_result_object_is_a_decision_too():
    class Refuse(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.BEFORE_AUTHORIZE: "refuse"}

        async def refuse(self, context):
            context.respond(call_result.Authorize(id_tag_info={"status": "Expired"}))

    cp = await create_test_charge_point(new_id(), plugins=[Refuse()])
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "T"})
    assert answer[2] == {"idTagInfo": {"status": "Expired"}}


@pytest.mark.parametrize(
    "decision, error",
    [
        ({"id_tag_info": {"status": "Maybe"}}, "not a valid Authorize answer"),
        (
            {"idTagInfo": {"status": "Blocked"}},
            "['idTagInfo'] are not fields of the Authorize answer",
        ),
        (call_result.Heartbeat(current_time=START_TIME), "not Heartbeat"),
        ({}, "a decision on Authorize gives id_tag_info"),
    ],
    ids=["bad-status", "camel-case", "wrong-action", "empty"],
)
async def test_a_decision_that_cannot_be_sent_is_logged_and_the_answer_unchanged(decision, error, caplog):
    class Confused(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.BEFORE_AUTHORIZE: "decide"}

        async def decide(self, context):
            context.respond(decision)

    cp = await create_test_charge_point(new_id(), plugins=[Confused()])
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "T"})
    assert answer[2] == {"idTagInfo": {"status": "Invalid"}}
    record = next(r for r in caplog.records if r.name == "levity.plugins.Confused")
    assert error in str(record.exc_info[1])


async def test_respond_in_an_after_hook_is_an_error_and_changes_nothing(caplog):
    class Late(ChargePointPlugin):
        def hooks(self):
            return {PluginHook.AFTER_AUTHORIZE: "decide"}

        async def decide(self, context):
            context.respond({"id_tag_info": {"status": "Blocked"}})

    cp = await create_test_charge_point(new_id(), plugins=[Late()])
    answer = await cp.connection.call_from_charge_point("Authorize", {"idTag": "T"})
    await after_hooks_done(cp)
    assert answer[2] == {"idTagInfo": {"status": "Invalid"}}
    record = next(r for r in caplog.records if r.name == "levity.plugins.Late")
    assert "only BEFORE hooks may call it" in str(record.exc_info[1])


async def test_an_app_receiver_decides_as_a_plugin_does():
    def closed_for_the_night(sender, context, **kwargs):
        context.respond({"id_tag_info": {"status": "Blocked"}}, by="night closure")

    cp = await create_test_charge_point(new_id())
    with register_temporarily("before_authorize", closed_for_the_night):
        result = await cp.on_authorize("T")
    assert result.id_tag_info == {"status": "Blocked"}


# --- calling the charge point from hooks ----------------------------------------------------


async def test_a_call_after_disconnect_fails_at_once():
    cp = await create_test_charge_point(new_id())
    await cp.shutdown(1000)
    with pytest.raises(ChargePointDisconnected):
        await cp.call(call.ClearCache())


async def test_an_after_hook_calls_the_charge_point_through_the_real_receive_path():
    cp = await create_test_charge_point(new_id(), plugins=[ReportBackPlugin()])
    cp.connection.answer(
        "GetConfiguration",
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]},
    )
    cp.connection.answer("DataTransfer", {"status": "Accepted"})
    answer = await cp.connection.call_from_charge_point(
        "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}
    )
    await after_hooks_done(cp)
    actions = [frame[2] if frame[0] == 2 else frame[0] for frame in cp.connection.sent]
    assert actions == [3, "GetConfiguration", "DataTransfer"]  # the answer first
    assert answer[2]["status"] == "Accepted"
    report = json.loads(cp.connection.calls("DataTransfer")[0].payload["data"])
    assert report == {"boot_status": "Accepted", "keys": {"HeartbeatInterval": "300"}}


# --- over a real daphne server --------------------------------------------------------------

SAMPLE = "tests.sample_plugins.plugins"
SAMPLE_PLUGINS = [
    {"class": f"{SAMPLE}.MaintenancePlugin", "charge_points": ["CP-MAINTENANCE"]},
    {
        "class": f"{SAMPLE}.RateLimitPlugin",
        "options": {"max_transactions": 1, "per_seconds": 600},
        "charge_points": ["CP-RATE-LIMITED"],
    },
    {"class": f"{SAMPLE}.IntervalFromChargePointPlugin", "charge_points": ["CP-INTERVAL"]},
    {"class": f"{SAMPLE}.TriggerOnConnectPlugin", "charge_points": ["CP-TRIGGER"]},
    {"class": f"{SAMPLE}.FailingPlugin", "charge_points": ["CP-MISBEHAVING"]},
    {"class": f"{SAMPLE}.HangingPlugin", "charge_points": ["CP-MISBEHAVING"]},
]


@pytest.fixture(scope="module")
def sample_server(django_db_setup, test_db_path, tmp_path_factory):
    """daphne with the sample plugins, per charge point, and ReportBackPlugin from a factory."""
    env = server_env(
        test_db_path,
        LEVITY_EXTRA_APPS="tests.sample_plugins",
        LEVITY_PLUGINS=json.dumps(SAMPLE_PLUGINS),
        LEVITY_PLUGIN_FACTORY=f"{SAMPLE}.create_plugins",
        LEVITY_BEFORE_HOOK_TIMEOUT="0.5",
        LEVITY_PLUGIN_HOOK_TIMEOUT="1",
    )
    server = DaphneServer(env, tmp_path_factory.mktemp("sample") / "daphne.log").start()
    yield server
    server.stop()


async def test_daphne_an_after_hook_calls_the_charge_point_without_deadlock(connect, sample_server, cp_id):
    """ReportBackPlugin comes from LEVITY_PLUGIN_FACTORY here: no entry names this charge point."""
    client = await connect(cp_id, server=sample_server)
    boot = await client.boot()
    report = await client.wait_for_command("DataTransfer", timeout=10)
    assert boot.status == "Accepted"
    assert [action for action, _ in client.received] == ["GetConfiguration", "DataTransfer"]
    assert report["vendor_id"] == "org.levity.test" and report["message_id"] == "report"
    reported = json.loads(report["data"])
    assert reported["boot_status"] == "Accepted"
    # What the client answered to GetConfiguration (tests/ocpp_client.py), passed on.
    assert {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}.items() <= reported["keys"].items()
    heartbeat = await client.call(call.Heartbeat())
    assert heartbeat.current_time.endswith("Z")


async def test_daphne_a_before_hook_calls_the_charge_point_and_decides_with_its_answer(
    connect, sample_server
):
    client = await connect("CP-INTERVAL", server=sample_server)
    boot = await client.boot()
    assert boot.interval == 60  # the charge point's MeterValueSampleInterval, not 300
    assert client.received[0] == ("GetConfiguration", {"key": ["MeterValueSampleInterval"]})


async def test_daphne_initialize_calls_the_charge_point_on_connect(connect, sample_server):
    client = await connect("CP-TRIGGER", server=sample_server)
    trigger = await client.wait_for_command("TriggerMessage")
    assert trigger == {"requested_message": "StatusNotification"}
    assert (await client.boot()).status == "Accepted"
    await sample_server.wait_for_log("CP-TRIGGER answered TriggerMessage: Accepted")


async def test_daphne_maintenance_plugin_refuses_only_its_charge_points(connect, sample_server, cp_id):
    await IdTag.objects.acreate(id_tag="GOOD")
    in_maintenance = await connect("CP-MAINTENANCE", server=sample_server)
    other = await connect(cp_id, server=sample_server)
    refused = await in_maintenance.call(call.Authorize(id_tag="GOOD"))
    accepted = await other.call(call.Authorize(id_tag="GOOD"))
    start = await in_maintenance.start_transaction(1, "GOOD", 0)
    assert refused.id_tag_info["status"] == "Blocked"
    assert accepted.id_tag_info["status"] == "Accepted"
    assert start.id_tag_info["status"] == "Blocked"
    tx = await Transaction.objects.aget(pk=start.transaction_id)
    assert tx.id_tag_status == "Blocked"


async def test_daphne_rate_limit_plugin_refuses_a_second_start(connect, sample_server):
    await IdTag.objects.acreate(id_tag="ONCE-ONLY")
    client = await connect("CP-RATE-LIMITED", server=sample_server)
    first = await client.start_transaction(1, "ONCE-ONLY", 0)
    await client.stop_transaction(first.transaction_id, 100)
    again = await client.call(call.Authorize(id_tag="ONCE-ONLY"))
    second = await client.start_transaction(1, "ONCE-ONLY", 100)
    assert first.id_tag_info["status"] == "Accepted"
    assert again.id_tag_info["status"] == "Blocked"
    assert second.id_tag_info["status"] == "Blocked"


async def test_daphne_failing_and_hanging_plugins_leave_answers_and_others_alone(connect, sample_server):
    await IdTag.objects.acreate(id_tag="GOOD")
    client = await connect("CP-MISBEHAVING", server=sample_server)
    boot = await client.boot()
    started = time.monotonic()
    authorize = await client.call(call.Authorize(id_tag="GOOD"))
    waited = time.monotonic() - started
    report = await client.wait_for_command("DataTransfer", timeout=10)  # ReportBackPlugin ran
    assert boot.status == "Accepted" and boot.interval == 300
    assert authorize.id_tag_info == {"status": "Accepted"}
    assert 0.5 <= waited < 3  # the hanging BEFORE hook was cut at 0.5 s
    assert json.loads(report["data"])["boot_status"] == "Accepted"
    log = await sample_server.wait_for_log(
        "ERROR levity.plugins.HangingPlugin: AFTER_BOOT_NOTIFICATION hook for CP-MISBEHAVING",
    )
    assert (
        "ERROR levity.plugins.FailingPlugin: BEFORE_BOOT_NOTIFICATION hook failed for CP-MISBEHAVING" in log
    )
    assert "ERROR levity.plugins.FailingPlugin: BEFORE_AUTHORIZE hook failed for CP-MISBEHAVING" in log
    assert "RuntimeError: FailingPlugin fails before_authorize on purpose" in log
    assert (
        "ERROR levity.plugins.HangingPlugin: BEFORE_AUTHORIZE hook for CP-MISBEHAVING "
        "took longer than 0.5s and was cancelled" in log
    )
    assert (await client.call(call.Heartbeat())).current_time.endswith("Z")


# --- configuration ---------------------------------------------------------------------------


def manage_check(test_db_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=server_env(test_db_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def plugins_json(*entries: dict) -> str:
    return json.dumps(list(entries))


CONFIG_ERRORS = {
    "bad-class-path": (
        {"LEVITY_PLUGINS": plugins_json({"class": "plugins.AutoRemoteStart"})},
        "LEVITY_PLUGINS[0]: cannot import 'plugins.AutoRemoteStart' (Module \"plugins\" does not "
        'define a "AutoRemoteStart" attribute/class). Check the dotted path; installed plugins: '
        "plugins.auto_remote_start.plugin.AutoRemoteStartPlugin,",
    ),
    "unknown-option": (
        {"LEVITY_PLUGINS": plugins_json({"class": "plugins.AutoRemoteStartPlugin", "options": {"delay": 2}})},
        "LEVITY_PLUGINS[0]: bad options for AutoRemoteStartPlugin: got an unexpected keyword "
        "argument 'delay'. It accepts: id_tag, delay_seconds.",
    ),
    "bad-option-value": (
        {
            "LEVITY_PLUGINS": plugins_json(
                {"class": "plugins.OrphanedTransactionPlugin", "options": {"scope": "site"}}
            )
        },
        "LEVITY_PLUGINS[0]: OrphanedTransactionPlugin(scope='site') failed: scope must be one of "
        "connector, charge_point; got 'site'",
    ),
    "app-not-installed": (
        {"LEVITY_PLUGINS": plugins_json({"class": f"{SAMPLE}.MaintenancePlugin"})},
        "LEVITY_PLUGINS[0]: MaintenancePlugin is defined in 'tests.sample_plugins.plugins', whose "
        "app is not installed. Add 'tests.sample_plugins' to INSTALLED_APPS, or to the "
        "LEVITY_EXTRA_APPS environment variable.",
    ),
    "not-a-plugin": (
        {"LEVITY_PLUGINS": plugins_json({"class": "chargepoints.models.ChargePoint"})},
        "LEVITY_PLUGINS[0]: 'chargepoints.models.ChargePoint' is not a ChargePointPlugin subclass.",
    ),
    "misspelled-hook": (
        {
            "LEVITY_EXTRA_APPS": "tests.sample_plugins",
            "LEVITY_PLUGINS": plugins_json({"class": f"{SAMPLE}.MisspelledHookPlugin"}),
        },
        "LEVITY_PLUGINS[0]: MisspelledHookPlugin.hooks(): AFTER_HEARTBEAT names 'on_heartbaet', "
        "which is not a method of it",
    ),
    "bad-factory-path": (
        {"LEVITY_PLUGIN_FACTORY": "tests.sample_plugins.plugins.make_them"},
        "LEVITY_PLUGIN_FACTORY: cannot import 'tests.sample_plugins.plugins.make_them'",
    ),
    "plugin-api-too-old": (
        {"LEVITY_EXTRA_APPS": "tests.future_plugin"},
        "plugin app 'tests.future_plugin' needs plugin API >= 99.0; this Levity provides "
        f"{PLUGIN_API_VERSION}. Install a version of the plugin made for this plugin API, or a "
        "Levity that provides what it needs.",
    ),
    "factory-returns-no-list": (
        {
            "LEVITY_EXTRA_APPS": "tests.sample_plugins",
            "LEVITY_PLUGIN_FACTORY": f"{SAMPLE}.not_a_factory_result",
        },
        f"LEVITY_PLUGIN_FACTORY: {SAMPLE}.not_a_factory_result() returned str, not a list of plugins.",
    ),
}


@pytest.mark.once  # configuration, refused as the apps load: no database
@pytest.mark.parametrize("env, message", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_bad_plugin_configuration_fails_manage_py_check_with_one_clear_line(env, message, test_db_path):
    result = manage_check(test_db_path, **env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Levity configuration error: {message}")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.once  # configuration and system checks: the database is not opened
def test_good_plugin_configuration_passes_manage_py_check(test_db_path):
    result = manage_check(
        test_db_path,
        LEVITY_EXTRA_APPS="tests.sample_plugins",
        LEVITY_PLUGINS=json.dumps(SAMPLE_PLUGINS),
        LEVITY_PLUGIN_FACTORY=f"{SAMPLE}.create_plugins",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.once  # refused as the apps load, before the database
def test_daphne_does_not_start_with_bad_plugin_configuration(start_daphne):
    with pytest.raises(RuntimeError, match="daphne exited early") as failure:
        start_daphne(
            LEVITY_PLUGINS=plugins_json({"class": "plugins.AutoRemoteStartPlugin", "options": {"id_tag": ""}})
        )
    assert (
        "Levity configuration error: LEVITY_PLUGINS[0]: AutoRemoteStartPlugin(id_tag='') failed: "
        "id_tag must be 1 to 20 characters" in str(failure.value)
    )


@pytest.mark.parametrize(
    ("minimum", "maximum", "current"),
    [(None, None, "1.0"), ("1.0", None, "1.0"), ("0.5", "1.0", "1.0"), (None, "1", "1.7")],
)
def test_a_plugin_api_within_the_plugin_apps_bounds_is_accepted(minimum, maximum, current):
    assert api_version_problem(minimum, maximum, current) is None


@pytest.mark.parametrize(
    ("minimum", "maximum", "current", "needs"),
    [
        ("1.1", None, "1.0", ">= 1.1"),
        (None, "0.9", "1.0", "<= 0.9"),
        (None, "1", "2.0", "1.x"),
        ("1.2", "1", "1.1", ">= 1.2 and 1.x"),
    ],
)
def test_a_plugin_api_outside_the_plugin_apps_bounds_is_refused(minimum, maximum, current, needs):
    problem = api_version_problem(minimum, maximum, current)
    assert problem is not None and problem.startswith(
        f"needs plugin API {needs}; this Levity provides {current}."
    )


@pytest.mark.parametrize("bound", ["1.x", "", "1.0.0", "v1"])
def test_a_plugin_api_bound_that_is_not_a_version_is_refused(bound):
    with pytest.raises(ValueError, match=f"min_api_version {bound!r} is not a version such as '1.0'"):
        api_version_problem(bound, None, "1.0")


def test_built_in_plugins_are_importable_from_plugins():
    assert AutoRemoteStartPlugin().id_tag == "anonymous"
    assert AutoRemoteStartPlugin().delay_seconds == 1.0
    assert OrphanedTransactionPlugin().scope == "connector"
    assert AutoRemoteStartPlugin().logger.name == "levity.plugins.AutoRemoteStartPlugin"


# --- served directly: LevityChargePoint on a websockets connection --------------------------


async def test_levity_charge_point_serves_a_websockets_connection_with_its_plugins(cp_id):
    from websockets.asyncio.server import serve

    sessions: list[LevityChargePoint] = []

    async def handler(connection):
        charge_point_id = connection.request.path.rsplit("/", 1)[-1]
        cp = LevityChargePoint(charge_point_id, connection, None, plugins=[ReportBackPlugin()])
        sessions.append(cp)
        await cp.start()

    events = []
    ended = asyncio.Event()

    async def connected(sender, charge_point, **kwargs):
        events.append(("connected", charge_point.id))

    async def disconnected(sender, charge_point, close_code, **kwargs):
        events.append(("disconnected", charge_point.id, close_code))
        ended.set()

    receivers = [("charge_point_connected", connected), ("charge_point_disconnected", disconnected)]
    with register_temporarily(receivers):
        async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:
            port = server.sockets[0].getsockname()[1]
            client = await OCPPClient.open(f"ws://127.0.0.1:{port}/ocpp/{cp_id}")
            try:
                boot = await client.boot(vendor="ThirdWay")
                report = await client.wait_for_command("DataTransfer")
            finally:
                await client.close()
            await asyncio.wait_for(ended.wait(), 5)
    assert events == [("connected", cp_id), ("disconnected", cp_id, 1000)]
    assert boot.status == "Accepted"
    assert json.loads(report["data"])["boot_status"] == "Accepted"
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.charge_point_vendor == "ThirdWay"
    assert sessions[0]._closed  # the session ended with the connection


# --- repositories plugins use ---------------------------------------------------------------


async def test_repositories_on_the_charge_point():
    cp = await create_test_charge_point(new_id())
    tx = await make_transaction(cp)
    await cp.on_status_notification(1, "NoError", "Charging")
    await cp.on_meter_values(
        1,
        [
            {
                "timestamp": "2026-03-01T10:10:00Z",
                "sampled_value": [{"value": "1.5", "unit": "kWh"}],
            },
            {
                "timestamp": "2026-03-01T10:20:00Z",
                "sampled_value": [
                    {"value": "2.0", "unit": "kWh"},
                    {"value": "16", "measurand": "Current.Import", "unit": "A"},
                ],
            },
        ],
        transaction_id=tx.pk,
    )
    assert (await cp.tx_repo.get_by_id(tx.pk)).id_tag == "TAG-1"
    assert [t.pk for t in await cp.tx_repo.get_active(cp.id, 1)] == [tx.pk]
    assert len(await cp.meter_repo.get_for_transaction(tx.pk)) == 3
    last = await cp.meter_repo.get_last_for_transaction(tx.pk)
    assert (last.value, last.unit, last.normalized_value) == ("2.0", "kWh", 2000.0)
    assert (await cp.meter_repo.get_last_energy_register(tx.pk)).normalized_value == 2000.0
    connector = await cp.conn_repo.get_by_cp_and_connector(cp.id, 1)
    assert connector.status == "Charging"
    assert await cp.cp_repo.update_status(cp.id, "Unavailable") is True
    assert (await cp.conn_repo.get_by_cp_and_connector(cp.id, 0)).status == "Unavailable"
    assert await cp.tx_repo.stop_transaction(tx.pk, 2000, reason="Other") is True
    assert await cp.tx_repo.stop_transaction(tx.pk, 2500) is False  # already stopped
    stopped = await cp.tx_repo.get_by_id(tx.pk)
    assert (stopped.meter_stop, stopped.stop_reason, stopped.energy_wh) == (2000, "Other", 1900)

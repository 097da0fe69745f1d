"""Faults around one session: a charge point gone mid-command, skewed clocks, Fluentd away.

Over a real daphne with real charge points (raw OCPP over WebSockets).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async

from chargepoints.models import ChargePointCommand, Connector
from tests.conftest import eventually
from tests.plugins.conftest import fluentd_plugins
from tests.plugins.fluentd_receiver import FluentdReceiver
from tests.reliability.conftest import (
    Ledger,
    Persistence,
    assert_nothing_lost,
    charge,
    stored_against_acknowledged,
)
from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)


def fresh_id(prefix: str) -> str:
    return f"{prefix}{time.time_ns() % 10**10}"


async def test_charge_point_gone_in_the_middle_of_a_command_gets_a_prompt_answer_and_a_stored_outcome(
    start_daphne, api_token, record
):
    server = start_daphne()
    cp = fresh_id("GONE")
    ledger = await Ledger(cp, server.ws_url(cp)).open()
    assert (await ledger.call("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}))[
        0
    ] == 3

    async def vanish_on_the_command() -> str:
        frame = json.loads(await asyncio.wait_for(ledger.ws.recv(), 30))
        ledger.ws.transport.abort()  # the cable is pulled: no close frame, no answer
        return frame[2]

    vanishing = asyncio.create_task(vanish_on_the_command())
    async with httpx.AsyncClient(
        base_url=f"{server.http_url}/api/v1", headers={"Authorization": f"Bearer {api_token}"}, timeout=60
    ) as api:
        started = time.monotonic()
        response = await api.post(
            f"/charge-points/{cp}/commands",
            json={"action": "Reset", "payload": {"type": "Soft"}, "timeout": 30},
        )
        waited = time.monotonic() - started
        assert await vanishing == "Reset"
        # Answered when the session ended, not after the 30 s command timeout.
        assert waited < 15, waited
        assert response.status_code in (409, 502, 504), response.text
        command = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp)
        assert command.status != "pending"
        # The charge point comes back: the session and commands work again.
        await ledger.open()
        idle = asyncio.create_task(ledger.answer_commands())
        again = await api.post(f"/charge-points/{cp}/commands", json={"action": "ClearCache"})
        idle.cancel()
        assert again.status_code == 201, again.text
    await ledger.close()
    record(
        "cp_disconnects_mid_call",
        fault="the charge point's connection drops after receiving a CS→CP Reset",
        answered_after_seconds=round(waited, 2),
        http_status=response.status_code,
        stored_status=command.status,
        calls_sent=2,
        calls_answered=2,
        lost=0,
    )


SKEWS = {"one_year_ahead": timedelta(days=365), "a_month_behind": timedelta(days=-30)}


@pytest.mark.parametrize("skew", SKEWS)
async def test_skewed_charge_point_clock_is_stored_as_sent_beside_the_receive_time(
    daphne_server, record, skew
):
    server = daphne_server
    cp = fresh_id("SKEW")
    ledger = await Ledger(cp, server.ws_url(cp)).open()
    when = datetime.now(UTC) + SKEWS[skew]
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    started = await ledger.call(
        "StartTransaction", {"connectorId": 1, "idTag": "SKEW", "meterStart": 10, "timestamp": stamp}
    )
    assert started[0] == 3, started
    transaction_id = started[2]["transactionId"]
    meter = {"connectorId": 1, "transactionId": transaction_id,
             "meterValue": [{"timestamp": stamp, "sampledValue": [{"value": "20"}]}]}  # fmt: skip
    assert (await ledger.call("MeterValues", meter))[0] == 3
    stop = {"transactionId": transaction_id, "meterStop": 30, "timestamp": stamp}
    assert (await ledger.call("StopTransaction", stop))[0] == 3
    await ledger.close()

    tx = await Transaction.objects.aget(pk=transaction_id)
    assert tx.start_timestamp == when.replace(microsecond=0)
    assert abs(tx.received_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert (tx.meter_stop, tx.energy_wh) == (30, 20)
    value = await MeterValue.objects.aget(transaction_id=transaction_id)
    assert value.timestamp == when.replace(microsecond=0)
    assert abs(value.received_at - datetime.now(UTC)) < timedelta(minutes=5)
    record(
        f"clock_skew_{skew}",
        fault=f"charge point clock {SKEWS[skew].days:+d} days off",
        calls_sent=3,
        calls_answered=3,
        acknowledged_transactions=1,
        stored_transactions=1,
        acknowledged_wh=20,
        stored_wh=tx.energy_wh,
        lost=0,
    )


async def test_connector_state_follows_the_latest_status_by_timestamp_not_by_arrival(daphne_server):
    server = daphne_server
    cp = fresh_id("ORDER")
    ledger = await Ledger(cp, server.ws_url(cp)).open()
    now = datetime.now(UTC)
    newer = {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
             "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    older = {**newer, "status": "Available",
             "timestamp": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    assert (await ledger.call("StatusNotification", newer))[0] == 3
    assert (await ledger.call("StatusNotification", older))[0] == 3  # queued offline, sent late
    await ledger.close()
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp, connector_id=1)
    assert connector.status == "Charging"


async def test_fluentd_away_delays_no_answer_and_loses_nothing(start_daphne, record):
    receiver = FluentdReceiver()  # its port is chosen, nothing listens yet
    server = start_daphne(LEVITY_PLUGINS=fluentd_plugins(receiver.port))
    ledgers = []
    for _ in range(3):
        cp = fresh_id("FLU")
        ledgers.append(await Ledger(cp, server.ws_url(cp)).open())
    persistence = Persistence()
    started = time.monotonic()
    await asyncio.gather(*(charge(ledger, persistence, sessions=2, samples=4) for ledger in ledgers))
    seconds = time.monotonic() - started
    assert persistence.internal_errors == 0
    receiver.start()
    try:
        # Service resumes by itself: the records kept while Fluentd was away arrive.
        await eventually(lambda: receiver.matching(cp=ledgers[0].charge_point_id), timeout=60)
    finally:
        receiver.stop()
    for ledger in ledgers:
        await ledger.close()
    figures = await sync_to_async(stored_against_acknowledged)(ledgers)
    record(
        "fluentd_away",
        fault="Fluentd unreachable during charging, then started",
        workload_seconds=round(seconds, 1),
        **figures,
    )
    assert_nothing_lost(figures)

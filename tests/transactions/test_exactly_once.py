"""Exactly-once effects over at-least-once delivery, over a real daphne server.

A charge point resends a CALL whose answer it lost -- with the same unique id or a
new one, on the same connection or after reconnecting -- and Levity stores its
effect once: one transaction, one stop, one row per sampled value.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from transactions.models import MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

T_START = "2025-03-01T10:00:00Z"
T_STOP = "2025-03-01T11:30:00Z"


def start_frame(unique_id: str) -> list:
    return [
        2,
        unique_id,
        "StartTransaction",
        {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000, "timestamp": T_START},
    ]


def meter_frame(unique_id: str, tx_id: int, at: str, energy: str = "2000") -> list:
    return [
        2,
        unique_id,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": tx_id,
            "meterValue": [
                {
                    "timestamp": at,
                    "sampledValue": [
                        {"value": energy},
                        {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                        {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    ],
                }
            ],
        },
    ]


def stop_frame(unique_id: str, tx_id: int, **extra) -> list:
    return [
        2,
        unique_id,
        "StopTransaction",
        {"transactionId": tx_id, "meterStop": 8500, "timestamp": T_STOP, **extra},
    ]


async def test_a_resent_start_transaction_with_a_new_id_after_reconnecting_is_the_same_transaction(
    raw_ws, cp_id
):
    async with raw_ws(cp_id) as session:
        first = await session.exchange(start_frame("s-1"))
    async with raw_ws(cp_id) as session:  # the answer was lost with the connection
        again = await session.exchange(start_frame("s-2"))
        same_id = await session.exchange(start_frame("s-1"))
    assert first[2]["transactionId"] == again[2]["transactionId"] == same_id[2]["transactionId"]
    assert await Transaction.objects.filter(charge_point__charge_point_id=cp_id).acount() == 1


@pytest.mark.parametrize("with_data", [False, True], ids=["plain", "transaction_data"])
async def test_a_resent_stop_transaction_stops_once_and_stores_its_data_once(raw_ws, cp_id, with_data):
    extra = {}
    if with_data:
        extra["transactionData"] = [
            {"timestamp": T_START, "sampledValue": [{"value": "1000", "context": "Transaction.Begin"}]},
            {"timestamp": T_STOP, "sampledValue": [{"value": "8500", "context": "Transaction.End"}]},
        ]
    async with raw_ws(cp_id) as session:
        tx_id = (await session.exchange(start_frame("s")))[2]["transactionId"]
        assert await session.exchange(stop_frame("p-1", tx_id, **extra)) == [3, "p-1", {}]
    first = await Transaction.objects.aget(pk=tx_id)
    async with raw_ws(cp_id) as session:
        answers = [
            await session.exchange(stop_frame("p-2", tx_id, **extra)),
            await session.exchange(stop_frame("p-1", tx_id, **extra)),
        ]
    assert answers == [[3, "p-2", {}], [3, "p-1", {}]]
    tx = await Transaction.objects.aget(pk=tx_id)
    assert (tx.meter_stop, tx.energy_wh, tx.stop_received_at) == (8500, 7500, first.stop_received_at)
    assert await MeterValue.objects.filter(transaction_id=tx_id).acount() == (2 if with_data else 0)


async def test_resent_meter_values_are_stored_once(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        tx_id = (await session.exchange(start_frame("s")))[2]["transactionId"]
        answers = [
            await session.exchange(meter_frame("m-1", tx_id, "2025-03-01T10:05:00Z")),
            await session.exchange(meter_frame("m-1", tx_id, "2025-03-01T10:05:00Z")),
            await session.exchange(meter_frame("m-2", tx_id, "2025-03-01T10:05:00Z")),
        ]
    # And once more from a new connection (the old session's write was still queued).
    async with raw_ws(cp_id) as session:
        answers.append(await session.exchange(meter_frame("m-3", tx_id, "2025-03-01T10:05:00Z")))
    assert [answer[:2] for answer in answers] == [[3, "m-1"], [3, "m-1"], [3, "m-2"], [3, "m-3"]]
    rows = [
        (m.measurand, m.value) async for m in MeterValue.objects.filter(transaction_id=tx_id).order_by("id")
    ]
    assert rows == [
        ("Energy.Active.Import.Register", "2000"),
        ("Power.Active.Import", "7.2"),
        ("Current.Import", "16"),
    ]


async def test_meter_values_outside_a_transaction_resent_are_stored_once(raw_ws, cp_id):
    frame = [
        2,
        "c-1",
        "MeterValues",
        {
            "connectorId": 2,
            "meterValue": [
                {"timestamp": T_START, "sampledValue": [{"value": "5", "context": "Sample.Clock"}]}
            ],
        },
    ]
    async with raw_ws(cp_id) as session:
        await session.exchange(frame)
        assert (await session.exchange(frame))[:2] == [3, "c-1"]
    assert await MeterValue.objects.filter(charge_point__charge_point_id=cp_id).acount() == 1


async def test_offline_queued_meter_values_replayed_late_are_stored_in_the_charge_points_time_order(
    raw_ws, cp_id
):
    """Hours-old queued values arrive after, and between, live ones."""
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def at(hours: float) -> str:
        return (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async with raw_ws(cp_id) as session:
        tx_id = (await session.exchange(start_frame("s")))[2]["transactionId"]
        await session.exchange(meter_frame("live-1", tx_id, at(0), "9000"))
        await session.exchange(meter_frame("queued-2", tx_id, at(-2), "3000"))
        await session.exchange(meter_frame("live-2", tx_id, at(0.01), "9100"))
        await session.exchange(meter_frame("queued-1", tx_id, at(-3), "2000"))
        await session.exchange(meter_frame("queued-3", tx_id, at(-1), "5000"))
    energy = [
        m.value
        async for m in MeterValue.objects.filter(
            transaction_id=tx_id, measurand="Energy.Active.Import.Register"
        )
    ]
    assert energy == ["2000", "3000", "5000", "9000", "9100"]  # the default ordering: the charge point's time
    from transactions.repositories import MeterValueRepository

    assert (await MeterValueRepository().get_last_energy_register(tx_id)).value == "9100"

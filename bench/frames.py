"""The OCPP-J frames the simulated charge points send, built as text without a library.

Frames are pre-formatted strings, so the load generator spends its CPU on the
WebSocket and not on building payloads.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson

ID_TAG_PREFIX = "BENCH"


def id_tag(index: int) -> str:
    """The ID tag simulated charge point `index` authorizes with (created by the runner)."""
    return f"{ID_TAG_PREFIX}{index}"


_now_cache: list = [0, ""]


def now_iso() -> str:
    """UTC now as an OCPP date-time in milliseconds (the second formatted once per second).

    Each MeterValues a simulated charge point sends is a new reading: Levity stores
    a sampled value once per (transaction, timestamp, measurand, ...), so two sent
    with one timestamp would count as a resend. A charge point waits for each
    answer, more than a millisecond, before its next message.
    """
    millisecond = int(time.time() * 1000)
    second, milli = divmod(millisecond, 1000)
    if _now_cache[0] != second:
        _now_cache[0] = second
        _now_cache[1] = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_now_cache[1]}.{milli:03d}Z"


def call(unique_id: str, action: str, payload: dict) -> str:
    return orjson.dumps([2, unique_id, action, payload]).decode()


HEARTBEAT_TEMPLATE = '[2,"{}","Heartbeat",{{}}]'


def heartbeat(unique_id: str) -> str:
    return HEARTBEAT_TEMPLATE.format(unique_id)


def boot_notification(unique_id: str) -> str:
    return call(
        unique_id,
        "BootNotification",
        {
            "chargePointVendor": "LevityBench",
            "chargePointModel": "Sim-22",
            "firmwareVersion": "1.0.0",
            "chargePointSerialNumber": "SIM-0001",
        },
    )


def status_notification(unique_id: str, connector_id: int, status: str) -> str:
    return call(
        unique_id,
        "StatusNotification",
        {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": now_iso(),
        },
    )


def authorize(unique_id: str, tag: str) -> str:
    return call(unique_id, "Authorize", {"idTag": tag})


def start_transaction(unique_id: str, tag: str, meter_start: int) -> str:
    return call(
        unique_id,
        "StartTransaction",
        {"connectorId": 1, "idTag": tag, "meterStart": meter_start, "timestamp": now_iso()},
    )


def stop_transaction(unique_id: str, transaction_id: int, tag: str, meter_stop: int) -> str:
    return call(
        unique_id,
        "StopTransaction",
        {
            "transactionId": transaction_id,
            "idTag": tag,
            "meterStop": meter_stop,
            "timestamp": now_iso(),
            "reason": "EVDisconnected",
        },
    )


#: Sampled values per MeterValues message (the issue asks for 10).
SAMPLES_PER_METER_VALUES = 10


def meter_values(unique_id: str, transaction_id: int | None, energy_wh: int) -> str:
    """MeterValues with 10 sampled values: energy, power, 3 currents, 3 voltages, SoC, temp."""
    sampled = [
        {
            "value": str(energy_wh),
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
            "context": "Sample.Periodic",
        },
        {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "16.1", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "15.9", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
        {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
        {"value": "229.8", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
        {"value": "231.0", "measurand": "Voltage", "phase": "L3-N", "unit": "V"},
        {"value": "57", "measurand": "SoC", "unit": "Percent", "location": "EV"},
        {"value": "31.5", "measurand": "Temperature", "unit": "Celsius", "location": "Body"},
    ]
    payload: dict = {"connectorId": 1, "meterValue": [{"timestamp": now_iso(), "sampledValue": sampled}]}
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return call(unique_id, "MeterValues", payload)

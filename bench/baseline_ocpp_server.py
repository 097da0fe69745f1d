"""Baseline (a): a minimal OCPP 1.6 central system on the `ocpp` package and `websockets`.

What a Python developer would write instead of Levity, after the `ocpp` package's own
example: one ``ocpp.v16.ChargePoint`` per connection served by its ``start()`` loop,
a handler per action answering what OCPP 1.6 asks, the package's normal validation
(jsonschema, in the default executor), nothing stored.

    python bench/baseline_ocpp_server.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from datetime import datetime, timezone

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.typing import Subprotocol

_transaction_ids = itertools.count(1)


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class CentralSystemChargePoint(ChargePoint):
    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kwargs):
        return call_result.BootNotification(
            current_time=now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kwargs):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs
    ):
        return call_result.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list, **kwargs):
        return call_result.MeterValues()


async def on_connect(websocket) -> None:
    if websocket.subprotocol != "ocpp1.6":
        await websocket.close()
        return
    charge_point_id = websocket.request.path.strip("/").split("/")[-1]
    charge_point = CentralSystemChargePoint(charge_point_id, websocket)
    with contextlib.suppress(websockets.ConnectionClosed):
        await charge_point.start()


async def serve(host: str, port: int, backlog: int) -> None:
    async with websockets.serve(
        on_connect, host, port, subprotocols=[Subprotocol("ocpp1.6")], backlog=backlog
    ):
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--backlog", type=int, default=1024)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.backlog))


if __name__ == "__main__":
    main()

"""A simulated AC charge point speaking OCPP 1.6-J, for trying Levity without hardware.

It behaves like a cooperative charger: it boots, sends heartbeats at the interval
the Central System gave, reports its connectors' status, and runs charging
sessions (Authorize, StartTransaction, MeterValues with energy, power, current and
voltage, StopTransaction with transactionData). It answers every CS->CP command
of OCPP 1.6 (Core, Firmware Management, Local Auth List Management, Reservation,
Smart Charging, Remote Trigger) the way such a charger would, e.g. a
RemoteStartTransaction starts a session and a TriggerMessage sends the message;
and those of the security extension: it keeps installed root certificates, makes
a key and a CSR when an ExtendedTriggerMessage asks for SignChargePointCertificate,
takes the certificate of a CertificateSigned, and reports a GetLog upload and a
SignedUpdateFirmware (both simulated) with their request ids.

Used by ``manage.py simulate_charge_point``; it needs only the server's URL (no
database access), so it can drive any OCPP 1.6 Central System.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("ocpp1.6")
ENERGY = "Energy.Active.Import.Register"
VOLTAGE = 230.0
PHASES = 3


class SimulatorError(Exception):
    """The simulator cannot go on; the message is one line for the operator."""


@dataclass
class SimulatorOptions:
    charge_point_id: str
    url: str = "ws://127.0.0.1:9000/ocpp"
    sessions: int = 1  # 0: start none, only answer the server's commands until stopped
    connectors: int = 1
    id_tag: str = "SIMULATOR"
    meter_interval: float = 5.0
    session_duration: float = 30.0
    pause: float = 2.0  # between two sessions
    power: float = 11000.0  # W, before charging profiles
    vendor: str = "Levity"
    model: str = "Simulator"
    firmware_version: str = "sim-1.0"
    #: HTTP Basic password (security profiles 1 and 2); the username is the id.
    password: str = ""

    @property
    def endpoint(self) -> str:
        return f"{self.url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"


@dataclass
class Reservation:
    reservation_id: int
    id_tag: str
    expiry: datetime
    expiry_task: asyncio.Task | None = None


@dataclass
class Connector:
    connector_id: int
    status: str = "Available"
    operative: bool = True
    inoperative_scheduled: bool = False
    claimed: bool = False  # a session is starting or running here
    transaction_id: int | None = None
    id_tag: str | None = None
    reservation: Reservation | None = None
    stop_reason: str | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    session_done: asyncio.Event = field(default_factory=asyncio.Event)
    power: float = 0.0

    @property
    def free(self) -> bool:
        return self.operative and not self.claimed and self.status in {"Available", "Preparing", "Reserved"}


def now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime | None = None) -> str:
    return (moment or now()).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until the event is set or the time is up.

    asyncio.timeout, not asyncio.wait_for: before Python 3.12 wait_for drops a
    cancellation that comes as the event is set, and shutdown relies on cancelling.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Wait until one of the events is set or the time is up."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# Configuration keys: name -> (read-only, value). Values are strings, as in OCPP.
def default_configuration(options: SimulatorOptions) -> dict[str, list]:
    return {
        "HeartbeatInterval": [False, "300"],
        "MeterValueSampleInterval": [False, f"{options.meter_interval:g}"],
        "ConnectionTimeOut": [False, "60"],
        "AuthorizeRemoteTxRequests": [False, "false"],
        "StopTransactionOnInvalidId": [False, "true"],
        "LocalAuthListEnabled": [False, "true"],
        "LocalAuthListMaxLength": [True, "100"],
        "SendLocalListMaxLength": [True, "100"],
        "MeterValuesSampledData": [False, f"{ENERGY},Power.Active.Import,Current.Import,Voltage"],
        "StopTxnSampledData": [False, ENERGY],
        "NumberOfConnectors": [True, str(options.connectors)],
        "SupportedFeatureProfiles": [
            True,
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
        ],
        "ReserveConnectorZeroSupported": [True, "false"],
        "ChargeProfileMaxStackLevel": [True, "10"],
        "ChargingScheduleAllowedChargingRateUnit": [True, "Current,Power"],
        "ChargingScheduleMaxPeriods": [True, "24"],
        "MaxChargingProfilesInstalled": [True, "10"],
        "WebSocketPingInterval": [False, "0"],
    }


NUMERIC_KEYS = {
    "HeartbeatInterval",
    "MeterValueSampleInterval",
    "ConnectionTimeOut",
    "WebSocketPingInterval",
}
BOOLEAN_KEYS = {"AuthorizeRemoteTxRequests", "StopTransactionOnInvalidId", "LocalAuthListEnabled"}


class SimulatedChargePoint(ChargePoint):
    """One simulated charger on one WebSocket connection."""

    def __init__(self, options: SimulatorOptions, connection: Any, say: Callable[[str], None] = print):
        super().__init__(options.charge_point_id, connection, response_timeout=30)
        self.options = options
        self.say = say
        self.connectors = {n: Connector(n) for n in range(1, options.connectors + 1)}
        self.configuration = default_configuration(options)
        self.meter_wh = 0.0  # one energy register for the whole charger
        self.heartbeat_interval = 300.0
        self.completed_sessions = 0
        self.diagnostics_status = "Idle"
        self.firmware_status = "Idle"
        self.charging_profiles: list[dict] = []
        self.local_list: dict[str, dict] = {}
        self.local_list_version = 0
        self.auth_cache: dict[str, dict] = {}
        # The security extension: installed root certificates by certificate type,
        # the charger's own key and certificate (SignCertificate/CertificateSigned).
        self.installed_certificates: dict[str, list[x509.Certificate]] = {}
        self.client_key: ec.EllipticCurvePrivateKey | None = None
        self.client_certificate: x509.Certificate | None = None
        self.log_status = "Idle"
        self.booted = asyncio.Event()
        self.shutdown_requested = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._heartbeat_task: asyncio.Task | None = None
        self._next_connector = itertools.cycle(sorted(self.connectors))

    # --- bookkeeping ----------------------------------------------------------------------

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """Run work outside the receive loop (a handler must never await a call)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.say(f"error: {type(task.exception()).__name__}: {task.exception()}")

    async def call(self, payload, suppress=False, unique_id=None, skip_schema_validation=False):
        """As ChargePoint.call, but a CALLERROR raises (never a silent None), and a task
        cancelled as the answer arrives stays cancelled.

        ocpp awaits the answer with asyncio.wait_for, which before Python 3.12 returns
        an answer that arrives together with a cancellation and drops the cancellation
        (CPython gh-86296). The task would then go on to its next call, whose answer
        nobody reads any more once serve() has stopped receiving.
        """
        result = await super().call(payload, suppress, unique_id, skip_schema_validation)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    def request_shutdown(self) -> None:
        """Stop the sessions (reason Local) and end the run, as on Ctrl-C."""
        self.shutdown_requested.set()
        for connector in self.connectors.values():
            self.request_stop(connector, "Local")

    def config_value(self, key: str) -> str:
        return self.configuration[key][1]

    @property
    def meter_interval(self) -> float:
        return max(float(self.config_value("MeterValueSampleInterval")), 0.05)

    # --- main flow ------------------------------------------------------------------------

    async def serve(self) -> int:
        """Receive the server's messages and run(), until run() ends; return run()'s result."""
        receiving = asyncio.create_task(self.start())
        running = asyncio.create_task(self.run())
        try:
            done, _ = await asyncio.wait({receiving, running}, return_when=asyncio.FIRST_COMPLETED)
            if running not in done:
                code = self._connection.close_code
                raise SimulatorError(f"the server closed the connection (code {code})")
            return running.result()
        finally:
            tasks = [receiving, running, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> int:
        """Boot, then run the configured number of sessions; return how many completed.

        With ``sessions`` 0 the charger starts none itself: it stays connected,
        answering the server's commands, until request_shutdown().
        """
        await self.boot()
        sessions = self.options.sessions
        if sessions == 0:
            await self.shutdown_requested.wait()
        while self.completed_sessions < sessions:
            if self.shutdown_requested.is_set():
                break
            await self.booted.wait()  # not while a Reset reboots
            connector = self._free_connector()
            if connector is None:
                await self._sleep(self.options.pause)
                continue
            await self.charge(connector, self.options.id_tag, remote=False)
            if self.completed_sessions < sessions:
                await self._sleep(self.options.pause)
        await self.stop_all_sessions("Local")
        return self.completed_sessions

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self.shutdown_requested, seconds)

    def _free_connector(self) -> Connector | None:
        for _ in self.connectors:
            connector = self.connectors[next(self._next_connector)]
            if connector.free and connector.reservation is None:
                return connector
        return None

    async def boot(self) -> None:
        """BootNotification until Accepted, then the connectors' status and heartbeats."""
        while True:
            result = await self.call(
                call.BootNotification(
                    charge_point_vendor=self.options.vendor,
                    charge_point_model=self.options.model,
                    charge_point_serial_number=f"SIM-{self.options.charge_point_id}"[:25],
                    firmware_version=self.options.firmware_version,
                    meter_type="Simulated",
                )
            )
            self.heartbeat_interval = float(result.interval or 300)
            self.say(f"BootNotification: {result.status} (interval {result.interval}s)")
            if result.status == "Accepted":
                break
            # Until the interval is over, or a boot the server triggered is accepted.
            await wait_any((self.booted, self.shutdown_requested), max(self.heartbeat_interval, 1.0))
            if self.booted.is_set():
                return
            if self.shutdown_requested.is_set():
                raise SimulatorError(f"not accepted by the server ({result.status})")
        self.configuration["HeartbeatInterval"][1] = f"{self.heartbeat_interval:g}"
        await self.send_status(0, "Available")
        for connector in self.connectors.values():
            await self.send_status(connector.connector_id, connector.status)
        self._restart_heartbeat()
        self.booted.set()

    def _restart_heartbeat(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        self._heartbeat_task = self.spawn(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.heartbeat()

    async def heartbeat(self) -> None:
        result = await self.call(call.Heartbeat())
        self.say(f"Heartbeat: server time {result.current_time}")

    async def send_status(self, connector_id: int, status: str) -> None:
        if connector_id in self.connectors:
            self.connectors[connector_id].status = status
        await self.call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code="NoError",
                status=status,
                timestamp=timestamp(),
            )
        )
        self.say(f"connector {connector_id}: {status}")

    # --- a charging session ---------------------------------------------------------------

    async def charge(
        self, connector: Connector, id_tag: str, *, remote: bool, reservation_id: int | None = None
    ) -> None:
        """One session on a connector, from plug-in to unplug (a remote start claimed it already)."""
        if not remote:
            self._claim(connector)
        try:
            await self._charge(connector, id_tag, remote=remote, reservation_id=reservation_id)
        finally:
            connector.claimed = False
            connector.transaction_id = None
            connector.id_tag = None
            connector.session_done.set()

    @staticmethod
    def _claim(connector: Connector) -> None:
        connector.claimed = True
        connector.stop_reason = None
        connector.stop_requested.clear()
        connector.session_done.clear()

    async def _charge(
        self, connector: Connector, id_tag: str, *, remote: bool, reservation_id: int | None
    ) -> None:
        n = connector.connector_id
        await self.send_status(n, "Preparing")
        if not remote or self.config_value("AuthorizeRemoteTxRequests") == "true":
            info = (await self.call(call.Authorize(id_tag=id_tag))).id_tag_info
            self.auth_cache[id_tag] = info
            self.say(f"Authorize {id_tag}: {info['status']}")
            if info["status"] != "Accepted":
                if not remote:
                    self.completed_sessions += 1
                await self.send_status(n, self._idle_status(connector))
                return
        if connector.stop_reason is not None:  # e.g. a Reset while it was preparing
            self.say(f"connector {n}: not started ({connector.stop_reason})")
            await self.send_status(n, self._idle_status(connector))
            return
        meter_start = round(self.meter_wh)
        started_at = now()
        result = await self.call(
            call.StartTransaction(
                connector_id=n,
                id_tag=id_tag,
                meter_start=meter_start,
                timestamp=timestamp(started_at),
                reservation_id=reservation_id,
            )
        )
        connector.transaction_id = result.transaction_id
        connector.id_tag = id_tag
        status = result.id_tag_info["status"]
        self.say(f"connector {n}: transaction {result.transaction_id} started ({status})")
        if status != "Accepted":
            connector.stop_reason = connector.stop_reason or "DeAuthorized"
        elif connector.stop_reason is None:  # not stopped while StartTransaction was on its way
            await self.send_status(n, "Charging")
            await self._deliver(connector)
        await self._stop(connector, meter_start, started_at)
        if not remote:
            self.completed_sessions += 1

    async def _deliver(self, connector: Connector) -> None:
        """Charge until the session's time is up or something stops it, sampling meters."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.session_duration
        last = loop.time()
        if self.shutdown_requested.is_set():
            connector.stop_reason = "Local"
        while connector.stop_reason is None:
            wait = min(self.meter_interval, max(deadline - loop.time(), 0))
            await wait_event(connector.stop_requested, wait)
            current = loop.time()
            connector.power = self.power_limit(connector.connector_id)
            self.meter_wh += connector.power * (current - last) / 3600
            last = current
            if connector.stop_reason is None and current >= deadline:
                connector.stop_reason = "EVDisconnected"
            await self.call(
                call.MeterValues(
                    connector_id=connector.connector_id,
                    transaction_id=connector.transaction_id,
                    meter_value=[self.meter_sample(connector, "Sample.Periodic")],
                )
            )
        connector.power = 0.0

    async def _stop(self, connector: Connector, meter_start: int, started_at: datetime) -> None:
        n = connector.connector_id
        reason = connector.stop_reason or "Local"
        meter_stop = max(round(self.meter_wh), meter_start)
        stopped_at = now()
        transaction_data = [
            self.energy_reading(meter_start, started_at, "Transaction.Begin"),
            self.energy_reading(meter_stop, stopped_at, "Transaction.End"),
        ]
        await self.call(
            call.StopTransaction(
                meter_stop=meter_stop,
                timestamp=timestamp(stopped_at),
                transaction_id=connector.transaction_id,
                reason=reason,
                id_tag=connector.id_tag,
                transaction_data=transaction_data,
            )
        )
        kwh = (meter_stop - meter_start) / 1000
        self.say(f"connector {n}: transaction {connector.transaction_id} stopped ({reason}), {kwh:.3f} kWh")
        await self.send_status(n, "Finishing")
        if connector.inoperative_scheduled:
            connector.operative = False
            connector.inoperative_scheduled = False
        await self.send_status(n, self._idle_status(connector))

    def _idle_status(self, connector: Connector) -> str:
        if not connector.operative:
            return "Unavailable"
        return "Reserved" if connector.reservation else "Available"

    def request_stop(self, connector: Connector, reason: str) -> None:
        """Stop the connector's session, or, if it is still starting, have it stop once started."""
        if connector.claimed and connector.stop_reason is None:
            connector.stop_reason = reason
            connector.stop_requested.set()

    async def stop_all_sessions(self, reason: str) -> None:
        busy = [c for c in self.connectors.values() if c.claimed]
        for connector in busy:
            self.request_stop(connector, reason)
        for connector in busy:
            await connector.session_done.wait()

    # --- meter readings -------------------------------------------------------------------

    def power_limit(self, connector_id: int) -> float:
        """The simulated power: the charger's maximum under the lowest charging-profile limit."""
        limit = self.options.power
        for profile in self.charging_profiles:
            if profile["connector_id"] in (0, connector_id):
                limit = min(limit, self._profile_limit_w(profile["profile"]))
        return limit

    @staticmethod
    def _profile_limit_w(profile: dict) -> float:
        schedule = profile["charging_schedule"]
        periods = schedule.get("charging_schedule_period") or [{"limit": float("inf")}]
        limit = float(periods[0]["limit"])
        if schedule.get("charging_rate_unit") == "A":
            phases = periods[0].get("number_phases") or PHASES
            limit *= VOLTAGE * phases
        return limit

    def meter_sample(self, connector: Connector, context: str) -> dict:
        current = connector.power / (VOLTAGE * PHASES)
        sampled = [
            (ENERGY, f"{self.meter_wh:.0f}", "Wh"),
            ("Power.Active.Import", f"{connector.power:.0f}", "W"),
            ("Current.Import", f"{current:.1f}", "A"),
            ("Voltage", f"{VOLTAGE:.1f}", "V"),
        ]
        return {
            "timestamp": timestamp(),
            "sampled_value": [
                {
                    "value": value,
                    "context": context,
                    "measurand": measurand,
                    "location": "Outlet",
                    "unit": unit,
                }
                for measurand, value, unit in sampled
            ],
        }

    @staticmethod
    def energy_reading(wh: int, moment: datetime, context: str) -> dict:
        return {
            "timestamp": timestamp(moment),
            "sampled_value": [{"value": str(wh), "context": context, "measurand": ENERGY, "unit": "Wh"}],
        }

    # --- CS -> CP: Core ----

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None, **kwargs):
        connector = self._connector_for_remote_start(id_tag, connector_id)
        if connector is None:
            self.say(f"RemoteStartTransaction {id_tag}: Rejected (no free connector)")
            return call_result.RemoteStartTransaction(status="Rejected")
        self._claim(connector)  # taken before the answer leaves
        self._remote_start = (connector, id_tag, kwargs.get("charging_profile"))
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    def after_remote_start_transaction(self, **kwargs):
        start = getattr(self, "_remote_start", None)
        if start is None:
            return
        self._remote_start = None
        connector, id_tag, profile = start
        if profile:
            self.charging_profiles.append({"connector_id": connector.connector_id, "profile": profile})
        reservation_id = None
        if connector.reservation and connector.reservation.id_tag == id_tag:
            reservation_id = connector.reservation.reservation_id
            self._clear_reservation(connector)
        self.say(f"RemoteStartTransaction {id_tag}: Accepted on connector {connector.connector_id}")
        self.spawn(self.charge(connector, id_tag, remote=True, reservation_id=reservation_id))

    def _connector_for_remote_start(self, id_tag: str, connector_id: int | None):
        candidates = [self.connectors.get(connector_id)] if connector_id else list(self.connectors.values())
        for connector in candidates:
            if connector is None or not connector.free:
                continue
            if connector.reservation is None or connector.reservation.id_tag == id_tag:
                return connector
        return None

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **kwargs):
        for connector in self.connectors.values():
            if connector.transaction_id == transaction_id and connector.stop_reason is None:
                self.request_stop(connector, "Remote")
                self.say(f"RemoteStopTransaction {transaction_id}: Accepted")
                return call_result.RemoteStopTransaction(status="Accepted")
        self.say(f"RemoteStopTransaction {transaction_id}: Rejected (no such transaction)")
        return call_result.RemoteStopTransaction(status="Rejected")

    @on(Action.reset)
    def on_reset(self, type: str, **kwargs):
        self.say(f"Reset ({type}): Accepted")
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **kwargs):
        self.spawn(self._reboot(f"{type}Reset"))

    async def _reboot(self, reason: str) -> None:
        """Stop the sessions, then boot again (the simulated reboot keeps the connection)."""
        self.booted.clear()
        await self.stop_all_sessions(reason)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        for connector in self.connectors.values():
            connector.status = "Available" if connector.operative else "Unavailable"
        await self.boot()

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **kwargs):
        connector = self.connectors.get(connector_id)
        if connector is None:
            return call_result.UnlockConnector(status="NotSupported")
        self.request_stop(connector, "UnlockCommand")
        self.say(f"UnlockConnector {connector_id}: Unlocked")
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **kwargs):
        targets = (
            list(self.connectors.values())
            if connector_id == 0
            else [self.connectors[connector_id]]
            if connector_id in self.connectors
            else []
        )
        if not targets:
            return call_result.ChangeAvailability(status="Rejected")
        operative = type == "Operative"
        busy = [c for c in targets if c.claimed]
        for connector in targets:
            if connector.claimed and not operative:
                connector.inoperative_scheduled = True
            else:
                connector.operative = operative
                connector.inoperative_scheduled = False
        self._availability_changed = [c for c in targets if not c.claimed]
        status = "Scheduled" if busy and not operative else "Accepted"
        self.say(f"ChangeAvailability {connector_id} {type}: {status}")
        return call_result.ChangeAvailability(status=status)

    @after(Action.change_availability)
    def after_change_availability(self, connector_id: int, **kwargs):
        changed, self._availability_changed = getattr(self, "_availability_changed", []), []

        async def report():
            for connector in changed:
                await self.send_status(connector.connector_id, self._idle_status(connector))

        self.spawn(report())

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kwargs):
        names = key or list(self.configuration)
        known = [
            {"key": name, "readonly": self.configuration[name][0], "value": self.config_value(name)}
            for name in names
            if name in self.configuration
        ]
        unknown = [name for name in names if name not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **kwargs):
        status = self._change_configuration(key, value)
        self.say(f"ChangeConfiguration {key}={value}: {status}")
        return call_result.ChangeConfiguration(status=status)

    def _change_configuration(self, key: str, value: str) -> str:
        if key not in self.configuration:
            return "NotSupported"
        if self.configuration[key][0]:
            return "Rejected"
        if key in NUMERIC_KEYS:
            try:
                if float(value) < 0:
                    return "Rejected"
            except ValueError:
                return "Rejected"
        if key in BOOLEAN_KEYS:
            if value.lower() not in {"true", "false"}:
                return "Rejected"
            value = value.lower()
        self.configuration[key][1] = value
        if key == "HeartbeatInterval" and float(value) > 0:
            self.heartbeat_interval = float(value)
            if self.booted.is_set():
                self._restart_heartbeat()
        return "Accepted"

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs):
        self.auth_cache.clear()
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data=None, **kw):
        if vendor_id != self.options.vendor:
            return call_result.DataTransfer(status="UnknownVendorId")
        # The simulator's vendor extension echoes what it is sent.
        return call_result.DataTransfer(status="Accepted", data=data)

    # --- CS -> CP: Remote Trigger ----

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **kw):
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return call_result.TriggerMessage(status="Rejected")
        self.say(f"TriggerMessage {requested_message}: Accepted")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **kw):
        self.spawn(self._send_triggered(requested_message, connector_id))

    async def _send_triggered(self, message: str, connector_id: int | None) -> None:
        connectors = (
            [self.connectors[connector_id]]
            if connector_id in self.connectors
            else list(self.connectors.values())
        )
        if message == "BootNotification":
            await self.boot()
        elif message == "Heartbeat":
            await self.heartbeat()
        elif message == "StatusNotification":
            if connector_id in (None, 0):
                await self.send_status(0, "Available")
            for connector in connectors if connector_id != 0 else []:
                await self.send_status(connector.connector_id, connector.status)
        elif message == "MeterValues":
            for connector in connectors:
                await self.call(
                    call.MeterValues(
                        connector_id=connector.connector_id,
                        transaction_id=connector.transaction_id,
                        meter_value=[self.meter_sample(connector, "Trigger")],
                    )
                )
        elif message == "DiagnosticsStatusNotification":
            await self.call(call.DiagnosticsStatusNotification(status=self.diagnostics_status))
        elif message == "FirmwareStatusNotification":
            await self.call(call.FirmwareStatusNotification(status=self.firmware_status))

    # --- CS -> CP: Firmware Management ----

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **kwargs):
        file_name = f"diagnostics-{self.options.charge_point_id}-{now():%Y%m%d%H%M%S}.log"
        self.say(f"GetDiagnostics: uploading {file_name} to {location}")
        return call_result.GetDiagnostics(file_name=file_name)

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, **kwargs):
        # The upload is simulated: nothing leaves this machine.
        self.spawn(self._report_progress("diagnostics", ["Uploading", "Uploaded"]))

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, **kwargs):
        self.say(f"UpdateFirmware: {location} from {retrieve_date}")
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    def after_update_firmware(self, retrieve_date: str, **kwargs):
        async def update():
            delay = (parse_time(retrieve_date) - now()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._report_progress("firmware", ["Downloading", "Downloaded", "Installing", "Installed"])

        self.spawn(update())

    async def _report_progress(self, kind: str, statuses: list[str]) -> None:
        for status in statuses:
            await asyncio.sleep(0.1)
            if kind == "diagnostics":
                self.diagnostics_status = status
                await self.call(call.DiagnosticsStatusNotification(status=status))
            else:
                self.firmware_status = status
                await self.call(call.FirmwareStatusNotification(status=status))
            self.say(f"{kind}: {status}")

    # --- CS -> CP: Reservation ----

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, **kwargs):
        connector = self.connectors.get(connector_id)
        if connector is None:  # connector 0: ReserveConnectorZeroSupported is false
            status = "Rejected"
        elif not connector.operative:
            status = "Unavailable"
        elif connector.claimed or (
            connector.reservation and connector.reservation.reservation_id != reservation_id
        ):
            status = "Occupied"
        else:
            if connector.reservation:
                self._clear_reservation(connector)
            connector.reservation = Reservation(reservation_id, id_tag, parse_time(expiry_date))
            status = "Accepted"
        self.say(f"ReserveNow {reservation_id} on connector {connector_id}: {status}")
        return call_result.ReserveNow(status=status)

    @after(Action.reserve_now)
    def after_reserve_now(self, connector_id: int, reservation_id: int, **kwargs):
        connector = self.connectors.get(connector_id)
        reservation = connector.reservation if connector else None
        if connector is None or reservation is None or reservation.reservation_id != reservation_id:
            return
        reservation.expiry_task = self.spawn(self._expire(connector, reservation))
        self.spawn(self.send_status(connector_id, "Reserved"))

    async def _expire(self, connector: Connector, reservation: Reservation) -> None:
        await asyncio.sleep(max((reservation.expiry - now()).total_seconds(), 0))
        if connector.reservation is reservation:
            connector.reservation = None
            self.say(f"reservation {reservation.reservation_id} expired")
            if not connector.claimed:
                await self.send_status(connector.connector_id, self._idle_status(connector))

    def _clear_reservation(self, connector: Connector) -> None:
        reservation = connector.reservation
        connector.reservation = None
        if (
            reservation
            and reservation.expiry_task
            and reservation.expiry_task is not (asyncio.current_task())
        ):
            reservation.expiry_task.cancel()

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **kwargs):
        for connector in self.connectors.values():
            if connector.reservation and connector.reservation.reservation_id == reservation_id:
                self._clear_reservation(connector)
                self._cancelled = connector
                return call_result.CancelReservation(status="Accepted")
        return call_result.CancelReservation(status="Rejected")

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, **kwargs):
        connector, self._cancelled = getattr(self, "_cancelled", None), None
        if connector is not None and not connector.claimed:
            self.spawn(self.send_status(connector.connector_id, self._idle_status(connector)))

    # --- CS -> CP: Smart Charging ----

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **kwargs):
        if connector_id != 0 and connector_id not in self.connectors:
            return call_result.SetChargingProfile(status="Rejected")
        purpose = cs_charging_profiles["charging_profile_purpose"]
        connector = self.connectors.get(connector_id)
        if purpose == "TxProfile" and (connector is None or connector.transaction_id is None):
            return call_result.SetChargingProfile(status="Rejected")  # needs a transaction
        if purpose == "ChargePointMaxProfile" and connector_id != 0:
            return call_result.SetChargingProfile(status="Rejected")
        profile_id = cs_charging_profiles["charging_profile_id"]
        self.charging_profiles = [
            p
            for p in self.charging_profiles
            if p["profile"]["charging_profile_id"] != profile_id
            and not (
                p["connector_id"] == connector_id
                and p["profile"]["charging_profile_purpose"] == purpose
                and p["profile"]["stack_level"] == cs_charging_profiles["stack_level"]
            )
        ]
        self.charging_profiles.append({"connector_id": connector_id, "profile": cs_charging_profiles})
        self.say(f"SetChargingProfile {profile_id} on connector {connector_id}: Accepted")
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **kwargs,
    ):
        def matches(entry: dict) -> bool:
            profile = entry["profile"]
            if id is not None:
                return profile["charging_profile_id"] == id
            return (
                (connector_id is None or entry["connector_id"] == connector_id)
                and (
                    charging_profile_purpose is None
                    or profile["charging_profile_purpose"] == charging_profile_purpose
                )
                and (stack_level is None or profile["stack_level"] == stack_level)
            )

        kept = [p for p in self.charging_profiles if not matches(p)]
        status = "Accepted" if len(kept) < len(self.charging_profiles) else "Unknown"
        self.charging_profiles = kept
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **kwargs
    ):
        if connector_id != 0 and connector_id not in self.connectors:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or "W"
        limit_w = self.power_limit(connector_id)
        limit = limit_w if unit == "W" else limit_w / (VOLTAGE * PHASES)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=timestamp(),
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 0, "limit": round(limit, 1)}],
            },
        )

    # --- CS -> CP: Local Auth List Management ----

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict] | None = None,
        **kwargs,
    ):
        entries = local_authorization_list or []
        if len(entries) > int(self.config_value("SendLocalListMaxLength")):
            return call_result.SendLocalList(status="Failed")
        if update_type == "Full":
            self.local_list = {}
        elif list_version <= self.local_list_version:
            return call_result.SendLocalList(status="VersionMismatch")
        for entry in entries:
            if entry.get("id_tag_info"):
                self.local_list[entry["id_tag"]] = entry["id_tag_info"]
            else:
                self.local_list.pop(entry["id_tag"], None)
        self.local_list_version = list_version
        self.say(f"SendLocalList {update_type} v{list_version}: {len(self.local_list)} tags")
        return call_result.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **kwargs):
        return call_result.GetLocalListVersion(list_version=self.local_list_version)

    # --- CS -> CP: the security extension ----

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **kwargs):
        try:
            installed = x509.load_pem_x509_certificate(certificate.encode())
        except ValueError:
            self.say(f"InstallCertificate {certificate_type}: Rejected (not a PEM certificate)")
            return call_result.InstallCertificate(status="Rejected")
        store = self.installed_certificates.setdefault(certificate_type, [])
        if installed not in store:
            store.append(installed)
        self.say(f"InstallCertificate {certificate_type}: {installed.subject.rfc4514_string()}")
        return call_result.InstallCertificate(status="Accepted")

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, **kwargs):
        installed = self.installed_certificates.get(certificate_type) or []
        if not installed:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[certificate_hash_data(c) for c in installed]
        )

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict, **kwargs):
        wanted = {k: v.lower() if k != "hash_algorithm" else v for k, v in certificate_hash_data.items()}
        for store in self.installed_certificates.values():
            for installed in store:
                if certificate_hash_data_for(installed, wanted["hash_algorithm"]) == wanted:
                    store.remove(installed)
                    self.say(f"DeleteCertificate: {installed.subject.rfc4514_string()} removed")
                    return call_result.DeleteCertificate(status="Accepted")
        return call_result.DeleteCertificate(status="NotFound")

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None, **kw):
        if connector_id is not None and connector_id != 0 and connector_id not in self.connectors:
            return call_result.ExtendedTriggerMessage(status="Rejected")
        self.say(f"ExtendedTriggerMessage {requested_message}: Accepted")
        return call_result.ExtendedTriggerMessage(status="Accepted")

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(self, requested_message: str, connector_id: int | None = None, **kw):
        if requested_message == "SignChargePointCertificate":
            self.spawn(self.request_certificate())
        elif requested_message == "LogStatusNotification":
            self.spawn(self.call(call.LogStatusNotification(status=self.log_status, request_id=None)))
        else:
            self.spawn(self._send_triggered(requested_message, connector_id))

    async def request_certificate(self) -> str:
        """Make a new key and send its CSR (CN = this charger's id) in SignCertificate."""
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, self.options.charge_point_id),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.options.vendor),
                    ]
                )
            )
            .sign(self.client_key, hashes.SHA256())
        )
        result = await self.call(
            call.SignCertificate(csr=csr.public_bytes(serialization.Encoding.PEM).decode())
        )
        self.say(f"SignCertificate: {result.status}")
        return result.status

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **kwargs):
        try:
            leaf = x509.load_pem_x509_certificates(certificate_chain.encode())[0]
        except ValueError:
            return call_result.CertificateSigned(status="Rejected")
        if self.client_key is None or _public_der(leaf.public_key()) != _public_der(
            self.client_key.public_key()
        ):
            self.say("CertificateSigned: Rejected (not for this charger's key)")
            return call_result.CertificateSigned(status="Rejected")
        self.client_certificate = leaf
        self.say(f"CertificateSigned: serial {leaf.serial_number:x}, until {leaf.not_valid_after_utc}")
        return call_result.CertificateSigned(status="Accepted")

    @on(Action.get_log)
    def on_get_log(self, log: dict, log_type: str, request_id: int, **kwargs):
        filename = f"{log_type}-{self.options.charge_point_id}-{now():%Y%m%d%H%M%S}.log"
        self.say(f"GetLog {log_type}: uploading {filename} to {log['remote_location']}")
        return call_result.GetLog(status="Accepted", filename=filename)

    @after(Action.get_log)
    def after_get_log(self, request_id: int, **kwargs):
        # The upload is simulated: nothing leaves this machine.
        async def upload():
            for status in ("Uploading", "Uploaded"):
                await asyncio.sleep(0.1)
                self.log_status = status
                await self.call(call.LogStatusNotification(status=status, request_id=request_id))
                self.say(f"log: {status}")

        self.spawn(upload())

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(self, request_id: int, firmware: dict, **kwargs):
        try:
            x509.load_pem_x509_certificate(firmware["signing_certificate"].encode())
        except ValueError:
            return call_result.SignedUpdateFirmware(status="InvalidCertificate")
        self.say(f"SignedUpdateFirmware {request_id}: {firmware['location']}")
        return call_result.SignedUpdateFirmware(status="Accepted")

    @after(Action.signed_update_firmware)
    def after_signed_update_firmware(self, request_id: int, firmware: dict, **kwargs):
        async def update():
            delay = (parse_time(firmware["retrieve_date_time"]) - now()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            # The download and the signature check are simulated.
            for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
                await asyncio.sleep(0.1)
                self.firmware_status = status
                await self.call(call.SignedFirmwareStatusNotification(status=status, request_id=request_id))
                self.say(f"signed firmware: {status}")

        self.spawn(update())


def certificate_hash_data_for(certificate: x509.Certificate, algorithm: str = "SHA256") -> dict:
    """OCPP's CertificateHashData of a certificate (snake_case), lower-case hex.

    As in OCSP: the hashes of the issuer's name (DER) and of the issuer's public key
    (the key's bytes, without its algorithm); the charger's installed certificates are
    root certificates, their own issuers.
    """
    digest: Callable[[], hashes.HashAlgorithm] = {
        "SHA256": hashes.SHA256,
        "SHA384": hashes.SHA384,
        "SHA512": hashes.SHA512,
    }[algorithm]

    def hashed(data: bytes) -> str:
        h = hashes.Hash(digest())
        h.update(data)
        return h.finalize().hex()

    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_bytes = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        key_bytes = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "hash_algorithm": algorithm,
        "issuer_name_hash": hashed(certificate.issuer.public_bytes()),
        "issuer_key_hash": hashed(key_bytes),
        "serial_number": format(certificate.serial_number, "x"),
    }


def certificate_hash_data(certificate: x509.Certificate) -> dict:
    return certificate_hash_data_for(certificate, "SHA256")


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def run_simulator(
    options: SimulatorOptions,
    say: Callable[[str], None] = print,
    *,
    handle_signals: bool = False,
) -> int:
    """Connect, run the sessions, disconnect; raise SimulatorError with a one-line reason.

    With ``handle_signals``, SIGINT/SIGTERM stop the sessions cleanly and end the run.
    """
    connection = await connect(options)
    async with connection:
        charge_point = SimulatedChargePoint(options, connection, say)
        say(f"{options.charge_point_id}: connected to {options.endpoint}")
        if handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, charge_point.request_shutdown)
        try:
            completed = await charge_point.serve()
        except websockets.ConnectionClosed as exc:
            raise SimulatorError(f"the server closed the connection ({exc})") from None
        except TimeoutError:
            raise SimulatorError("the server did not answer in time") from None
        except OCPPError as exc:
            raise SimulatorError(
                f"the server answered with CALLERROR {exc.code}: {exc.description}"
            ) from None
    say(f"{options.charge_point_id}: {completed} session(s) completed; disconnected")
    return completed


async def connect(options: SimulatorOptions) -> websockets.ClientConnection:
    """Open the OCPP 1.6 WebSocket, or raise SimulatorError saying why not."""
    try:
        headers = {}
        if options.password:
            basic = base64.b64encode(f"{options.charge_point_id}:{options.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        connection = await websockets.connect(
            options.endpoint, subprotocols=[SUBPROTOCOL], open_timeout=10, additional_headers=headers
        )
    except websockets.InvalidStatus as exc:
        raise SimulatorError(
            f"{options.endpoint} refused the connection (HTTP {exc.response.status_code}); "
            "is the charge point id valid and known to the server?"
        ) from None
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise SimulatorError(f"cannot connect to {options.endpoint}: {exc}") from None
    if connection.subprotocol != SUBPROTOCOL:
        await connection.close()
        raise SimulatorError(f"{options.endpoint} did not agree to subprotocol {SUBPROTOCOL}")
    return connection

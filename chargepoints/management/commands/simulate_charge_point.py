"""``manage.py simulate_charge_point``: a simulated charger for trying Levity."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chargepoints.simulator import SimulatorError, SimulatorOptions, run_simulator


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Connect a simulated AC charge point to a running Levity (or any OCPP 1.6-J "
        "Central System): boot, heartbeats, charging sessions with meter values, and "
        "answers to the server's commands. Exits 0 after --sessions sessions."
    )
    # A client of any Central System over OCPP: it uses none of this project's models,
    # URLs or admin, so it runs none of their system checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("charge_point_id", help="the id at the end of the WebSocket URL")
        parser.add_argument(
            "--url",
            default="ws://127.0.0.1:9000/ocpp",
            help="the server's OCPP endpoint, without the id (default: %(default)s)",
        )
        parser.add_argument(
            "--sessions",
            type=int,
            default=1,
            help="charging sessions to run before exiting; 0 starts none and stays "
            "connected, answering the server's commands, until Ctrl-C (default: %(default)s)",
        )
        parser.add_argument(
            "--connectors", type=int, default=1, help="number of connectors (default: %(default)s)"
        )
        parser.add_argument(
            "--id-tag",
            default="SIMULATOR",
            help="the ID tag the driver presents; it must be Accepted in the server's "
            "ID tags (default: %(default)s)",
        )
        parser.add_argument(
            "--meter-interval",
            type=positive_float,
            default=5.0,
            help="seconds between MeterValues while charging (default: %(default)s)",
        )
        parser.add_argument(
            "--session-duration",
            type=positive_float,
            default=30.0,
            help="seconds a session charges before the EV unplugs (default: %(default)s)",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=2.0,
            help="seconds between two sessions (default: %(default)s)",
        )
        parser.add_argument(
            "--power",
            type=positive_float,
            default=11000.0,
            help="charging power in W, before charging profiles (default: %(default)s)",
        )

        parser.add_argument(
            "--password",
            default="",
            help="HTTP Basic password (security profiles 1 and 2; the username is the id)",
        )

    def handle(self, *args, **options) -> None:
        if options["sessions"] < 0:
            raise CommandError("--sessions must be 0 (run until interrupted) or more.")
        if not 1 <= options["connectors"] <= 32:
            raise CommandError("--connectors must be between 1 and 32.")
        if not 1 <= len(options["id_tag"]) <= 20:
            raise CommandError("--id-tag must be 1 to 20 characters (OCPP CiString20).")
        if not options["url"].startswith(("ws://", "wss://")):
            raise CommandError(f"--url {options['url']!r} must start with ws:// or wss://.")
        simulator_options = SimulatorOptions(
            charge_point_id=options["charge_point_id"],
            url=options["url"],
            sessions=options["sessions"],
            connectors=options["connectors"],
            id_tag=options["id_tag"],
            meter_interval=options["meter_interval"],
            session_duration=options["session_duration"],
            pause=max(options["pause"], 0.0),
            power=options["power"],
            password=options["password"],
        )
        try:
            asyncio.run(run_simulator(simulator_options, self._say, handle_signals=True))
        except SimulatorError as exc:
            raise CommandError(str(exc)) from None

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

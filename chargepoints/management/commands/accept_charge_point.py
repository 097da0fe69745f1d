"""``manage.py accept_charge_point ID``: accept a Pending charge point through the running server."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chargepoints.management.remote import CLIENT_CHECKS, EXIT_OFFLINE, EXIT_UNREACHABLE, post_to_api


class Command(BaseCommand):
    help = (
        "Accept a charge point's registration. A connected charge point is sent "
        "TriggerMessage BootNotification, and its next boot is answered Accepted. "
        "Exit status 3: unknown charge point; 5: the server cannot be reached."
    )
    requires_system_checks = CLIENT_CHECKS

    def add_arguments(self, parser) -> None:
        parser.add_argument("charge_point_id", help="The charge point's id.")
        parser.add_argument(
            "--api-url",
            default=settings.LEVITY_API_URL,
            help="The running Levity server (default LEVITY_API_URL=%(default)s).",
        )

    def handle(self, *args, charge_point_id: str, api_url: str, **options) -> None:
        wait = settings.LEVITY_CALL_TIMEOUT + 15
        response, data = post_to_api(api_url, charge_point_id, "accept", None, wait)
        if response.status_code == 404:
            raise CommandError(data.get("detail", "unknown charge point"), returncode=EXIT_OFFLINE)
        if response.status_code != 200:
            raise CommandError(
                data.get("detail") or f"HTTP {response.status_code}", returncode=EXIT_UNREACHABLE
            )
        if not data["changed"]:
            self.stdout.write(f"{charge_point_id} was already Accepted")
        elif data["trigger"] is None:
            self.stdout.write(f"{charge_point_id} accepted; its next BootNotification is answered Accepted")
        else:
            trigger = data["trigger"]
            self.stdout.write(
                f"{charge_point_id} accepted; TriggerMessage BootNotification: {trigger['status']} "
                + json.dumps(trigger["response"])
            )

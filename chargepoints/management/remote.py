"""Base of the manage.py commands that act on the running server through its HTTP API.

They post to ``LEVITY_API_URL`` (default http://127.0.0.1:9000), so they work with
the default single-process server as with several. Authentication needs no token
from the operator: the command has access to the server's database, so it mints a
short-lived token there (kind "manage.py command", named user@host), uses it for
this one request and deletes it. Without database access, set LEVITY_API_TOKEN.

Exit status: 0 the charge point accepted; 1 it rejected (or answered CALLERROR / an
invalid answer); 2 the request is invalid; 3 unknown or not connected charge point;
4 no answer in time; 5 the server cannot be reached or refused the token.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from chargepoints.models import ApiToken, ApiTokenKind, ApiTokenScope

EXIT_REJECTED = 1
EXIT_INVALID = 2
EXIT_OFFLINE = 3
EXIT_TIMEOUT = 4
EXIT_UNREACHABLE = 5

#: The system checks a command that acts through the running server runs first: those
#: of the models it writes (its token). The URL conf, the API and the admin are the
#: server's, checked as it starts; loading them here would slow every such command.
CLIENT_CHECKS = [Tags.models]


class RemoteCommand(BaseCommand):
    """Send one OCPP 1.6 command to a charge point through the running server."""

    requires_system_checks = CLIENT_CHECKS
    #: The OCPP action; None when the subclass takes it from the command line.
    action: str | None = None

    def add_arguments(self, parser) -> None:
        parser.add_argument("charge_point_id", help="The charge point's id.")
        self.add_command_arguments(parser)
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="Seconds to wait for the charge point's answer (server default: LEVITY_CALL_TIMEOUT).",
        )
        parser.add_argument(
            "--api-url",
            default=settings.LEVITY_API_URL,
            help="The running Levity server (default LEVITY_API_URL=%(default)s).",
        )

    def add_command_arguments(self, parser) -> None:
        """Arguments of the OCPP payload."""

    def payload(self, options: dict[str, Any]) -> dict:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        action = self.action or options["action"]
        command = self.send(
            options["api_url"],
            options["charge_point_id"],
            action,
            self.payload(options),
            options["timeout"],
        )
        self.show(command)
        if command["status"] != "accepted":
            raise CommandError(
                f"{command['charge_point']} did not accept {action}: status "
                f"{command['response_status'] or command['status']}",
                returncode=EXIT_REJECTED,
            )

    def show(self, command: dict) -> None:
        """Print the charge point's answer."""
        self.stdout.write(json.dumps(command["response"], indent=2, sort_keys=True))

    # --- the request ----------------------------------------------------------------

    def send(
        self, api_url: str, charge_point_id: str, action: str, payload: dict, timeout: float | None
    ) -> dict:
        body = {"action": action, "payload": payload, "timeout": timeout}
        wait = (timeout or settings.LEVITY_CALL_TIMEOUT) + 15
        response, data = post_to_api(api_url, charge_point_id, "commands", body, wait)
        if response.status_code == 201:
            return data
        if "command" in data and response.status_code == 502:
            self.show_error(data["command"])
        code = {
            401: EXIT_UNREACHABLE,
            403: EXIT_UNREACHABLE,
            404: EXIT_OFFLINE,
            409: EXIT_OFFLINE,
            422: EXIT_INVALID,
            502: EXIT_REJECTED,
            504: EXIT_TIMEOUT,
        }.get(response.status_code, EXIT_UNREACHABLE)
        raise CommandError(data.get("detail") or f"HTTP {response.status_code}", returncode=code)

    def show_error(self, command: dict) -> None:
        if command.get("error_details"):
            self.stdout.write(json.dumps(command["error_details"], indent=2, sort_keys=True))


def post_to_api(
    api_url: str, charge_point_id: str, what: str, body: dict | None, wait: float
) -> tuple[httpx.Response, dict]:
    """POST ``body`` to the charge point's ``what`` in the running server's API.

    Returns the response and its JSON. A server that cannot be reached, or answers
    something that is not the Levity API, is a CommandError (exit status 5).
    """
    url = f"{api_url.rstrip('/')}/api/v1/charge-points/{quote(charge_point_id, safe='')}/{what}"
    with cli_token(wait) as token:
        try:
            response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=wait)
        except httpx.HTTPError as exc:
            raise CommandError(
                f"Cannot reach the Levity server at {api_url}: {exc or type(exc).__name__}",
                returncode=EXIT_UNREACHABLE,
            ) from None
    try:
        data = response.json()
    except ValueError:
        raise CommandError(
            f"{api_url} answered HTTP {response.status_code}, not the Levity API",
            returncode=EXIT_UNREACHABLE,
        ) from None
    return response, data


@contextlib.contextmanager
def cli_token(lifetime: float) -> Iterator[str]:
    """LEVITY_API_TOKEN, or a token minted in the database for this one request."""
    if settings.LEVITY_API_TOKEN:
        yield settings.LEVITY_API_TOKEN
        return
    name = f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        token, plaintext = ApiToken.issue(
            name,
            kind=ApiTokenKind.CLI,
            scope=ApiTokenScope.COMMANDS,
            expires_at=timezone.now() + timedelta(seconds=lifetime + 60),
        )
    except DatabaseError as exc:
        raise CommandError(
            f"Cannot create an API token in the database ({exc}); run migrate, "
            "or set LEVITY_API_TOKEN to a token from the admin",
            returncode=EXIT_UNREACHABLE,
        ) from None
    try:
        yield plaintext
    finally:
        ApiToken.objects.filter(pk=token.pk).delete()

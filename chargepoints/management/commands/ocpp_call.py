import json

from django.core.management.base import CommandError

from chargepoints.management.remote import EXIT_INVALID, RemoteCommand


class Command(RemoteCommand):
    help = "Send any OCPP 1.6 Central System command, e.g. ocpp_call CP1 ClearCache '{}'."

    def add_command_arguments(self, parser):
        parser.add_argument("action", metavar="Action", help="The OCPP action, e.g. DataTransfer.")
        parser.add_argument("payload", nargs="?", default="{}", help="The JSON payload (default {}).")

    def payload(self, options):
        try:
            return json.loads(options["payload"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"The payload is not JSON: {exc}", returncode=EXIT_INVALID) from None

from chargepoints.management.remote import RemoteCommand
from chargepoints.session.commands import TRIGGERABLE_MESSAGES


class Command(RemoteCommand):
    help = "Ask a charge point to send a message now (TriggerMessage)."
    action = "TriggerMessage"

    def add_command_arguments(self, parser):
        parser.add_argument(
            "message",
            metavar="MESSAGE",
            choices=TRIGGERABLE_MESSAGES,
            help=", ".join(TRIGGERABLE_MESSAGES),
        )
        parser.add_argument("--connector-id", type=int)

    def payload(self, options):
        payload = {"requestedMessage": options["message"]}
        if options["connector_id"] is not None:
            payload["connectorId"] = options["connector_id"]
        return payload

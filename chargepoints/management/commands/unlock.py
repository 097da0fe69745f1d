from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Unlock a connector of a charge point (UnlockConnector)."
    action = "UnlockConnector"

    def add_command_arguments(self, parser):
        parser.add_argument("connector_id", type=int)

    def payload(self, options):
        return {"connectorId": options["connector_id"]}

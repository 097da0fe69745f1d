from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Ask a charge point to start a transaction (RemoteStartTransaction)."
    action = "RemoteStartTransaction"

    def add_command_arguments(self, parser):
        parser.add_argument(
            "--connector-id", type=int, help="Connector to start on (default: the charge point chooses)."
        )
        parser.add_argument(
            "--id-tag", default="anonymous", help="ID tag to start with (default %(default)s)."
        )

    def payload(self, options):
        payload = {"idTag": options["id_tag"]}
        if options["connector_id"] is not None:
            payload["connectorId"] = options["connector_id"]
        return payload

from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Ask a charge point to stop a transaction (RemoteStopTransaction)."
    action = "RemoteStopTransaction"

    def add_command_arguments(self, parser):
        parser.add_argument("transaction_id", type=int)

    def payload(self, options):
        return {"transactionId": options["transaction_id"]}

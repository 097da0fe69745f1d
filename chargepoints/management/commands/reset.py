from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Reset a charge point (Reset)."
    action = "Reset"

    def add_command_arguments(self, parser):
        parser.add_argument("--type", choices=["Soft", "Hard"], default="Soft", help="Default %(default)s.")

    def payload(self, options):
        return {"type": options["type"]}

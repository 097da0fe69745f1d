from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Change a configuration key of a charge point (ChangeConfiguration)."
    action = "ChangeConfiguration"

    def add_command_arguments(self, parser):
        parser.add_argument("key", metavar="KEY")
        parser.add_argument("value", metavar="VALUE")

    def payload(self, options):
        return {"key": options["key"], "value": options["value"]}

from chargepoints.management.remote import RemoteCommand


class Command(RemoteCommand):
    help = "Read a charge point's configuration keys (GetConfiguration); all keys without KEY."
    action = "GetConfiguration"

    def add_command_arguments(self, parser):
        parser.add_argument("keys", nargs="*", metavar="KEY")

    def payload(self, options):
        return {"key": options["keys"]} if options["keys"] else {}

    def show(self, command):
        response = command["response"] or {}
        for item in response.get("configurationKey") or ():
            flag = "  (read-only)" if item.get("readonly") else ""
            self.stdout.write(f"{item['key']} = {item.get('value', '')}{flag}")
        for key in response.get("unknownKey") or ():
            self.stdout.write(f"{key}: unknown to the charge point")

"""``manage.py set_security_profile ID N``: for provisioning scripts."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from chargepoints import security


class Command(BaseCommand):
    help = (
        "Set a charge point's security profile (0-3), registering the id if it is new. "
        "For profiles 1 and 2 a new HTTP Basic password is printed, this once: only its "
        "hash is kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("charge_point_id", help="The charge point's id.")
        parser.add_argument("profile", type=int, choices=[0, 1, 2, 3], help="0, 1, 2 or 3.")

    def handle(self, *args, charge_point_id: str, profile: int, **options) -> None:
        from chargepoints.session.consumer import CHARGE_POINT_ID

        if not CHARGE_POINT_ID.match(charge_point_id):
            raise CommandError(f"{charge_point_id!r} is not a charge point id (1-48 URL-safe characters)")
        password = security.set_security_profile(charge_point_id, profile, create=True)
        if password is not None:
            self.stdout.write(password)
        else:
            self.stderr.write(f"{charge_point_id}: security profile {profile}")

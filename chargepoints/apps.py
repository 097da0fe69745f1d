from django.apps import AppConfig


class ChargePointsConfig(AppConfig):
    name = "chargepoints"
    verbose_name = "Charge points"

    def ready(self) -> None:
        from . import certificates

        # A CA that cannot sign stops start-up with a message naming the setting,
        # not the first SignCertificate.
        certificates.configured_authority()

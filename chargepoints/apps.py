from django.apps import AppConfig


class ChargePointsConfig(AppConfig):
    name = "chargepoints"
    verbose_name = "Charge points"

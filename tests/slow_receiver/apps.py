from django.apps import AppConfig


class SlowReceiverConfig(AppConfig):
    name = "tests.slow_receiver"
    label = "slow_receiver"

    def ready(self) -> None:
        from . import receivers  # noqa: F401

from django.apps import AppConfig


class AcmeVendorConfig(AppConfig):
    name = "tests.acme_vendor"
    label = "acme_vendor"

    def ready(self) -> None:
        from . import receivers  # noqa: F401

from typing import Any

from django.apps import AppConfig
from django.dispatch import receiver

from plugins.signals import charge_point_connected
from transactions.signals import transaction_recorded

#: A StartTransaction with this ID tag fails once its outbox row is written.
FAILING_ID_TAG = "FAILS-AFTER-OUTBOX"


class OutboxProbeConfig(AppConfig):
    name = "tests.plugins.outbox_probe"
    label = "outbox_probe"


class StartFailedAfterOutbox(Exception):
    pass


def fail_after_outbox(sender: Any, transaction: Any, event: str, request: Any, **kwargs: Any) -> None:
    from plugins.transaction_webhook.models import OutboxDelivery

    if request.id_tag == FAILING_ID_TAG and OutboxDelivery.objects.filter(transaction=transaction).exists():
        raise StartFailedAfterOutbox(f"transaction {transaction.pk} fails after its outbox row")


@receiver(charge_point_connected, dispatch_uid="tests.outbox_probe.connected")
def connect_after_the_plugins(sender: Any, charge_point: Any, **kwargs: Any) -> None:
    # After the plugins' initialize(): so this receiver runs after the outbox's.
    transaction_recorded.connect(fail_after_outbox, dispatch_uid="tests.outbox_probe.fail")

from __future__ import annotations

from django.dispatch import receiver

from plugins.signals import data_transfer_received

VENDOR_ID = "com.acme"


@receiver(data_transfer_received, dispatch_uid="tests.acme_vendor.data_transfer")
def answer_acme_data_transfer(sender, charge_point, vendor_id, message_id, data, **kwargs):
    """Echo "Echo" messages in upper case; other Acme messages are unknown."""
    if vendor_id != VENDOR_ID:
        return None
    if message_id == "Echo":
        return {"status": "Accepted", "data": (data or "").upper()}
    return {"status": "UnknownMessageId"}

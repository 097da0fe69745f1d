"""The transaction part of /api/v1/: transactions and meter values (read only)."""

from __future__ import annotations

from chargepoints.api.base import ChargePointRowViewSet

from ..models import MeterValue, Transaction
from .filters import MeterValueFilter, TransactionFilter
from .serializers import MeterValueSerializer, TransactionSerializer


class TransactionViewSet(ChargePointRowViewSet):
    """Charging transactions, newest first; `?active=true` for the running ones."""

    model = Transaction
    serializer_class = TransactionSerializer
    filterset_class = TransactionFilter
    ordering_fields = ["start_timestamp", "stop_timestamp", "energy_wh"]


class MeterValueViewSet(ChargePointRowViewSet):
    """One row per sampled value, in the charge point's time order."""

    model = MeterValue
    serializer_class = MeterValueSerializer
    filterset_class = MeterValueFilter
    ordering_fields = ["timestamp", "received_at"]

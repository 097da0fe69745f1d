"""The transaction part of /api/v1/: transactions and meter values (read only)."""

from __future__ import annotations

from rest_framework import viewsets

from ..models import MeterValue, Transaction
from .filters import MeterValueFilter, TransactionFilter
from .serializers import MeterValueSerializer, TransactionSerializer


class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    """Charging transactions, newest first; `?active=true` for the running ones."""

    queryset = Transaction.objects.select_related("charge_point")
    serializer_class = TransactionSerializer
    filterset_class = TransactionFilter
    ordering_fields = ["start_timestamp", "stop_timestamp", "energy_wh"]


class MeterValueViewSet(viewsets.ReadOnlyModelViewSet):
    """One row per sampled value, in the charge point's time order."""

    queryset = MeterValue.objects.select_related("charge_point")
    serializer_class = MeterValueSerializer
    filterset_class = MeterValueFilter
    ordering_fields = ["timestamp", "received_at"]

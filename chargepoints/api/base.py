"""What every /api/v1/ resource that belongs to a charge point shares.

Connectors, commands, transactions and meter values are each rows of one charge
point: the API names it by its ``charge_point_id`` (never the database key), lets
clients filter on it, and reads it in the same query as the rows. Token auth,
pagination, filter backends and JSON errors are the same for every view and come
from ``REST_FRAMEWORK`` in settings.
"""

from __future__ import annotations

import django_filters
from django.db import models
from rest_framework import serializers, viewsets


# No docstring: drf-spectacular would print it as every subclass's description.
class ChargePointRowSerializer(serializers.ModelSerializer):
    charge_point = serializers.SlugRelatedField(slug_field="charge_point_id", read_only=True)


class ChargePointRowFilter(django_filters.FilterSet):
    """``?charge_point=<charge_point_id>``."""

    charge_point = django_filters.CharFilter(field_name="charge_point__charge_point_id")


class ChargePointRowViewSet(viewsets.ReadOnlyModelViewSet):
    """List and detail of ``model``'s rows, each read with its charge point in one query."""

    model: type[models.Model]

    def get_queryset(self) -> models.QuerySet:
        return self.model._default_manager.select_related("charge_point")

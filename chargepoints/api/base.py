"""What every /api/v1/ resource that belongs to a charge point shares.

Connectors, commands, transactions and meter values are each rows of one charge
point: the API names it by its ``charge_point_id`` (never the database key), lets
clients filter on it, and reads it in the same query as the rows. Token auth,
pagination, filter backends and JSON errors are the same for every view and come
from ``REST_FRAMEWORK`` in settings.
"""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django_filters.filterset import FILTER_FOR_DBFIELD_DEFAULTS
from rest_framework import serializers, viewsets

#: The range of the widest integer column (64-bit): a filter value outside it cannot
#: match a row, and the databases refuse it rather than compare.
INTEGER_COLUMN_RANGE = (-(2**63), 2**63 - 1)


# No docstring: drf-spectacular would print it as every subclass's description.
class ChargePointRowSerializer(serializers.ModelSerializer):
    charge_point = serializers.SlugRelatedField(slug_field="charge_point_id", read_only=True)


class IntegerFilter(django_filters.NumberFilter):
    """A whole number within an integer column's range; anything else is a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", INTEGER_COLUMN_RANGE[0])
        kwargs.setdefault("max_value", INTEGER_COLUMN_RANGE[1])
        super().__init__(*args, **kwargs)


class UTCDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time that exists in UTC, where the database compares it.

    ``9999-12-31T23:59-05:00`` parses but has no UTC value: a 400, not an OverflowError.
    """

    def to_python(self, value: str | None) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is not None:
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                raise ValidationError(
                    "%(value)s is outside the range of UTC date-times.",
                    code="invalid",
                    params={"value": value},
                ) from None
        return parsed


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """``?…_after=`` / ``?…_before=`` an ISO 8601 date-time that exists in UTC."""

    field_class = UTCDateTimeField


class ChargePointRowFilter(django_filters.FilterSet):
    """``?charge_point=<charge_point_id>``; integer and date-time filters refuse values out of range."""

    FILTER_DEFAULTS = {
        **FILTER_FOR_DBFIELD_DEFAULTS,
        **{
            field: {"filter_class": IntegerFilter}
            for field in FILTER_FOR_DBFIELD_DEFAULTS
            if issubclass(field, models.IntegerField | models.AutoField)
        },
        models.DateTimeField: {"filter_class": DateTimeFilter},
    }

    charge_point = django_filters.CharFilter(field_name="charge_point__charge_point_id")


class ChargePointRowViewSet(viewsets.ReadOnlyModelViewSet):
    """List and detail of ``model``'s rows, each read with its charge point in one query."""

    model: type[models.Model]

    def get_queryset(self) -> models.QuerySet:
        return self.model._default_manager.select_related("charge_point")

"""Operator views of ID tags (editable), transactions and meter values (as reported)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.html import format_html

from chargepoints.admin import ReportedByChargePointAdmin, ReportedInline, admin_url, charge_point_link

from .models import AuthorizationStatus, IdTag, MeterValue, SupersededStop, Transaction
from .repositories import ENERGY_REGISTER

#: Meter values per page on a transaction's page.
METER_VALUES_PER_PAGE = 50


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"


def format_kwh(wh: float | None) -> str:
    return "-" if wh is None else f"{wh / 1000:.3f} kWh"


# --- ID tags ----------------------------------------------------------------------------


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired"), ("valid", "Not expired"), ("never", "No expiry date")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expiry_date__lte=now)
        if self.value() == "valid":
            return queryset.filter(Q(expiry_date__gt=now) | Q(expiry_date__isnull=True))
        if self.value() == "never":
            return queryset.filter(expiry_date__isnull=True)
        return queryset


@admin.register(IdTag)
class IdTagAdmin(admin.ModelAdmin):
    list_display = [
        "id_tag",
        "status",
        "authorizes_as",
        "expiry_date",
        "parent_id_tag",
        "transactions_link",
        "note",
    ]
    list_editable = ["status"]
    list_filter = ["status", ExpiryFilter]
    search_fields = ["id_tag", "parent_id_tag", "note"]
    fields = ["id_tag", "status", "expiry_date", "parent_id_tag", "note", "created_at"]
    readonly_fields = ["created_at"]
    actions = ["accept_tags", "block_tags"]

    @admin.display(description="Authorize answers")
    def authorizes_as(self, obj: IdTag) -> str:
        """The status a charge point gets now (expiry applied; ConcurrentTx aside)."""
        if obj.status == AuthorizationStatus.ACCEPTED and obj.is_expired():
            return AuthorizationStatus.EXPIRED
        return obj.status

    @admin.display(description="transactions")
    def transactions_link(self, obj: IdTag) -> str:
        return format_html('<a href="{}">transactions</a>', admin_url(Transaction, id_tag=obj.id_tag))

    def _set_status(self, request, queryset, status: str) -> None:
        count = queryset.update(status=status)
        self.message_user(request, f"{count} ID tag(s) set to {status}.", messages.SUCCESS)

    @admin.action(description="Accept selected ID tags")
    def accept_tags(self, request, queryset):
        self._set_status(request, queryset, AuthorizationStatus.ACCEPTED)

    @admin.action(description="Block selected ID tags")
    def block_tags(self, request, queryset):
        self._set_status(request, queryset, AuthorizationStatus.BLOCKED)


# --- transactions ---------------------------------------------------------------------------


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("stopped", "Stopped")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(stop_timestamp__isnull=True)
        if self.value() == "stopped":
            return queryset.filter(stop_timestamp__isnull=False)
        return queryset


def latest_energy_register() -> Subquery:
    """The transaction's latest energy register reading, in Wh."""
    return Subquery(
        MeterValue.objects.filter(transaction=OuterRef("pk"), measurand=ENERGY_REGISTER, normalized_unit="Wh")
        .order_by("-timestamp", "-id")
        .values("normalized_value")[:1]
    )


class SupersededStopInline(ReportedInline):
    """Stops the charge point's own StopTransaction replaced (docs/operations.md)."""

    model = SupersededStop
    fields = [
        "stopped_by",
        "meter_stop",
        "stop_timestamp",
        "stop_reason",
        "energy_wh",
        "stop_received_at",
        "superseded_at",
    ]
    verbose_name_plural = "superseded stops (replaced by the charge point's own)"


@admin.register(Transaction)
class TransactionAdmin(ReportedByChargePointAdmin):
    inlines = [SupersededStopInline]
    list_display = [
        "transaction_id",
        "charge_point_link",
        "connector_id",
        "id_tag_link",
        "id_tag_status",
        "start_timestamp",
        "stop_timestamp",
        "duration_display",
        "energy_display",
        "stop_reason",
    ]
    list_filter = [
        ActiveFilter,
        ("charge_point", admin.RelatedOnlyFieldListFilter),
        "id_tag_status",
        "stop_reason",
        "stopped_by",
        "rebuilt",
        "meter_stop_below_start",
        "stop_before_start",
    ]
    search_fields = ["id_tag", "stop_id_tag", "charge_point__charge_point_id"]
    search_help_text = "ID tag, charge point id, or a transaction id."
    date_hierarchy = "start_timestamp"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "transaction_id",
                    "charge_point_link",
                    "connector_id",
                    "id_tag_link",
                    "id_tag_status",
                    "reservation_id",
                ]
            },
        ),
        (
            "Start",
            {
                "fields": [
                    "meter_start",
                    "start_timestamp",
                    "received_at",
                    "rebuilt",
                    "reported_transaction_id",
                ]
            },
        ),
        (
            "Stop",
            {
                "fields": [
                    "meter_stop",
                    "stop_timestamp",
                    "stop_reason",
                    "stop_id_tag",
                    "stop_received_at",
                    "stopped_by",
                    "stop_before_start",
                ]
            },
        ),
        (
            "Energy",
            {"fields": ["energy_display", "duration_display", "meter_stop_below_start"]},
        ),
    ]
    readonly_fields = [
        "transaction_id",
        "charge_point_link",
        "id_tag_link",
        "energy_display",
        "duration_display",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(latest_energy_wh=latest_energy_register())

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isdigit():  # a transaction id, within the active filters
            results |= queryset.filter(pk=int(term))
        return results, may_have_duplicates

    @admin.display(description="transaction id", ordering="pk")
    def transaction_id(self, obj: Transaction) -> int:
        return obj.pk

    @admin.display(description="charge point", ordering="charge_point__charge_point_id")
    def charge_point_link(self, obj: Transaction) -> str:
        return charge_point_link(obj.charge_point)

    @admin.display(description="ID tag", ordering="id_tag")
    def id_tag_link(self, obj: Transaction) -> str:
        return format_html(
            '<a href="{}" title="All transactions of this tag">{}</a>',
            admin_url(Transaction, id_tag=obj.id_tag),
            obj.id_tag,
        )

    @admin.display(description="duration")
    def duration_display(self, obj: Transaction) -> str:
        if obj.stop_before_start:
            return format_html(
                '<span title="stopped at {}, before its start at {}, as the charge point reported">'
                "⚠ stop before start</span>",
                obj.stop_timestamp.isoformat() if obj.stop_timestamp else "",
                obj.start_timestamp.isoformat(),
            )
        if obj.is_active:
            return f"{format_duration(timezone.now() - obj.start_timestamp)} (active)"
        return format_duration(obj.duration)

    @admin.display(description="energy", ordering="energy_wh")
    def energy_display(self, obj: Transaction) -> str:
        if obj.meter_stop_below_start:
            return format_html(
                '<span title="meterStop {} is below meterStart {}">⚠ not stored</span>',
                obj.meter_stop,
                obj.meter_start,
            )
        if obj.energy_wh is not None:
            return format_kwh(obj.energy_wh)
        latest = getattr(obj, "latest_energy_wh", None)
        if obj.is_active and latest is not None and latest >= obj.meter_start:
            return f"{format_kwh(latest - obj.meter_start)} so far"
        return "-"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if object_id.isdigit():
            paginator = Paginator(
                MeterValue.objects.filter(transaction_id=int(object_id)).order_by("timestamp", "id"),
                METER_VALUES_PER_PAGE,
            )
            page = paginator.get_page(request.GET.get("mv_page"))
            query = request.GET.copy()
            query.pop("mv_page", None)
            extra_context.update(
                meter_values_page=page,
                meter_values_page_range=paginator.get_elided_page_range(page.number),
                meter_values_query=query.urlencode(),
                meter_values_url=admin_url(MeterValue, transaction__id__exact=object_id),
            )
        return super().change_view(request, object_id, form_url, extra_context)


# --- meter values -----------------------------------------------------------------------------


@admin.register(MeterValue)
class MeterValueAdmin(ReportedByChargePointAdmin):
    list_display = [
        "timestamp",
        "charge_point",
        "connector_id",
        "transaction_link",
        "measurand",
        "phase",
        "value",
        "unit",
        "normalized",
        "context",
        "location",
    ]
    list_select_related = ["charge_point"]
    list_filter = ["measurand", "context", "location", "unit", "phase"]
    search_fields = ["charge_point__charge_point_id"]
    search_help_text = "Charge point id, or a transaction id."
    date_hierarchy = "timestamp"
    list_per_page = 100

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if term.isdigit():
            return queryset.filter(Q(transaction_id=int(term)) | Q(charge_point__charge_point_id=term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="transaction", ordering="transaction_id")
    def transaction_link(self, obj: MeterValue) -> str:
        if obj.transaction_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            admin_url(Transaction, "change", obj.transaction_id),
            obj.transaction_id,
        )

    @admin.display(description="normalized")
    def normalized(self, obj: MeterValue) -> str:
        if obj.normalized_value is None:
            return "-"
        return f"{obj.normalized_value:g} {obj.normalized_unit}"

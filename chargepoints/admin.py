"""Operator views of charge points, their connectors, and what they report.

What a charge point reports (identity, connection state, statuses, logs) is shown
read-only: the protocol is its only source. The operator decides the registration
status (what BootNotification answers) and may register a charge point ahead of its
first connection (needed when LEVITY_AUTO_REGISTER is false).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator

from .consumers import CHARGE_POINT_ID
from .models import (
    ChargePoint,
    ChargePointStatus,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    RegistrationStatus,
    StatusNotification,
)

#: Status notifications shown on a charge point's page (the rest: "full history").
RECENT_STATUS_ROWS = 20


class ReportedByChargePointAdmin(admin.ModelAdmin):
    """Rows that only the OCPP session writes: viewable, never added or edited by hand."""

    list_select_related = ["charge_point"]
    show_full_result_count = False  # no COUNT(*) over a large log on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def admin_url(model, action: str = "changelist", *args, **query) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{action}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


def charge_point_link(charge_point: ChargePoint) -> str:
    return format_html(
        '<a href="{}">{}</a>', admin_url(ChargePoint, "change", charge_point.pk), charge_point
    )


# --- filters --------------------------------------------------------------------------


class OnlineFilter(admin.SimpleListFilter):
    title = "connection"
    parameter_name = "online"

    def lookups(self, request, model_admin):
        return [("yes", "Online"), ("no", "Offline")]

    def queryset(self, request, queryset):
        field = "is_connected" if queryset.model is ChargePoint else "charge_point__is_connected"
        if self.value() == "yes":
            return queryset.filter(**{field: True})
        if self.value() == "no":
            return queryset.filter(**{field: False})
        return queryset


class ConnectorStatusFilter(admin.SimpleListFilter):
    """Charge points with at least one connector (0 = the whole unit) in a status."""

    title = "connector status"
    parameter_name = "connector_status"

    def lookups(self, request, model_admin):
        return ChargePointStatus.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(connectors__status=self.value()).distinct()
        return queryset


# --- charge points ----------------------------------------------------------------------


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    fields = [
        "connector_id",
        "status",
        "error_code",
        "info",
        "vendor_id",
        "vendor_error_code",
        "status_timestamp",
        "updated_at",
    ]
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StatusHistoryInline(admin.TabularInline):
    """The latest status notifications; ChargePointAdmin limits the rows."""

    model = StatusNotification
    verbose_name_plural = f"Recent status notifications (latest {RECENT_STATUS_ROWS})"
    extra = 0
    fields = [
        "received_at",
        "connector_id",
        "status",
        "error_code",
        "info",
        "vendor_error_code",
        "timestamp",
    ]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @staticmethod
    def recent(charge_point: ChargePoint) -> QuerySet:
        latest = list(
            StatusNotification.objects.filter(charge_point=charge_point)
            .order_by("-received_at", "-id")
            .values_list("pk", flat=True)[:RECENT_STATUS_ROWS]
        )
        return StatusNotification.objects.filter(pk__in=latest).order_by("-received_at", "-id")


class ChargePointForm(forms.ModelForm):
    class Meta:
        model = ChargePoint
        fields = ["charge_point_id", "registration_status"]

    def clean_charge_point_id(self) -> str:
        value = self.cleaned_data["charge_point_id"]
        if not CHARGE_POINT_ID.match(value):
            raise forms.ValidationError(
                "Use 1 to 48 characters from A-Z a-z 0-9 . _ : @ + ~ * - "
                "(the id the charge point puts at the end of its WebSocket URL)."
            )
        return value


@admin.register(ChargePoint)
class ChargePointAdmin(admin.ModelAdmin):
    form = ChargePointForm
    list_display = [
        "charge_point_id",
        "online",
        "registration_status",
        "connector_statuses",
        "charge_point_vendor",
        "charge_point_model",
        "firmware_version",
        "last_seen_at",
        "last_boot_at",
    ]
    list_filter = [
        OnlineFilter,
        "registration_status",
        ConnectorStatusFilter,
        "charge_point_vendor",
        "charge_point_model",
    ]
    search_fields = [
        "charge_point_id",
        "charge_point_vendor",
        "charge_point_model",
        "charge_point_serial_number",
        "charge_box_serial_number",
        "meter_serial_number",
        "iccid",
        "imsi",
        "remote_address",
    ]
    actions = ["accept_registration", "set_registration_pending", "reject_registration"]
    inlines = [ConnectorInline, StatusHistoryInline]
    fieldsets = [
        (None, {"fields": ["charge_point_id", "registration_status", "activity"]}),
        (
            "Connection",
            {
                "fields": [
                    "is_connected",
                    "remote_address",
                    "connected_at",
                    "disconnected_at",
                    "last_seen_at",
                    "last_heartbeat_at",
                    "last_boot_at",
                    "created_at",
                ]
            },
        ),
        (
            "Identity (from BootNotification)",
            {
                "fields": [
                    "charge_point_vendor",
                    "charge_point_model",
                    "charge_point_serial_number",
                    "charge_box_serial_number",
                    "firmware_version",
                    "iccid",
                    "imsi",
                    "meter_type",
                    "meter_serial_number",
                ]
            },
        ),
    ]
    protocol_fields = [
        "activity",
        "is_connected",
        "remote_address",
        "connected_at",
        "disconnected_at",
        "last_seen_at",
        "last_heartbeat_at",
        "last_boot_at",
        "created_at",
        "charge_point_vendor",
        "charge_point_model",
        "charge_point_serial_number",
        "charge_box_serial_number",
        "firmware_version",
        "iccid",
        "imsi",
        "meter_type",
        "meter_serial_number",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("connectors")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        # The id is the charge point's own: set once, when registering it by hand.
        return self.protocol_fields if obj is None else ["charge_point_id", *self.protocol_fields]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, StatusHistoryInline) and obj is not None and obj.pk:
            kwargs["queryset"] = inline.recent(obj)
        return kwargs

    @admin.display(description="online", boolean=True, ordering="is_connected")
    def online(self, obj: ChargePoint) -> bool:
        return obj.is_connected

    @admin.display(description="connectors")
    def connector_statuses(self, obj: ChargePoint) -> str:
        return format_html_join(
            ", ",
            '<span title="{}">{}:&nbsp;{}</span>',
            ((c.error_code or "", c.connector_id, c.status or "?") for c in obj.connectors.all()),
        )

    @admin.display(description="activity")
    def activity(self, obj: ChargePoint) -> str:
        if obj.pk is None:
            return "-"
        from transactions.models import MeterValue, Transaction

        transactions = Transaction.objects.filter(charge_point=obj)
        active = transactions.active().count()
        query = {"charge_point__id__exact": obj.pk}
        links = [
            (
                admin_url(Transaction, **query),
                f"{transactions.count()} transactions ({active} active)",
            ),
            (admin_url(MeterValue, **query), "meter values"),
            (admin_url(StatusNotification, **query), "status history"),
            (admin_url(DataTransfer, **query), "data transfers"),
            (admin_url(DiagnosticsStatusNotification, **query), "diagnostics status"),
            (admin_url(FirmwareStatusNotification, **query), "firmware status"),
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def _set_registration(self, request, queryset, status: str) -> None:
        count = queryset.update(registration_status=status)
        self.message_user(
            request,
            f"{count} charge point(s) will be answered {status} at their next BootNotification.",
            messages.SUCCESS,
        )

    @admin.action(description="Accept registration (BootNotification answers Accepted)")
    def accept_registration(self, request, queryset):
        self._set_registration(request, queryset, RegistrationStatus.ACCEPTED)

    @admin.action(description="Set registration Pending")
    def set_registration_pending(self, request, queryset):
        self._set_registration(request, queryset, RegistrationStatus.PENDING)

    @admin.action(description="Reject registration")
    def reject_registration(self, request, queryset):
        self._set_registration(request, queryset, RegistrationStatus.REJECTED)


@admin.register(Connector)
class ConnectorAdmin(ReportedByChargePointAdmin):
    list_display = [
        "__str__",
        "charge_point_link",
        "connector_id",
        "status",
        "error_code",
        "info",
        "vendor_error_code",
        "status_timestamp",
    ]
    list_filter = ["status", "error_code", OnlineFilter]
    search_fields = ["charge_point__charge_point_id", "info", "vendor_error_code"]

    @admin.display(description="charge point", ordering="charge_point__charge_point_id")
    def charge_point_link(self, obj: Connector) -> str:
        return charge_point_link(obj.charge_point)


# --- what charge points reported ---------------------------------------------------------


@admin.register(StatusNotification)
class StatusNotificationAdmin(ReportedByChargePointAdmin):
    list_display = [
        "received_at",
        "charge_point",
        "connector_id",
        "status",
        "error_code",
        "info",
        "vendor_id",
        "vendor_error_code",
        "timestamp",
    ]
    list_filter = ["status", "error_code"]
    search_fields = ["charge_point__charge_point_id", "info", "vendor_error_code"]
    date_hierarchy = "received_at"


@admin.register(DataTransfer)
class DataTransferAdmin(ReportedByChargePointAdmin):
    list_display = [
        "received_at",
        "charge_point",
        "vendor_id",
        "message_id",
        "short_data",
        "status",
        "short_response",
    ]
    list_filter = ["status", "vendor_id"]
    search_fields = ["charge_point__charge_point_id", "vendor_id", "message_id", "data"]
    date_hierarchy = "received_at"

    @admin.display(description="data")
    def short_data(self, obj: DataTransfer) -> str:
        return Truncator(obj.data).chars(60)

    @admin.display(description="answered data")
    def short_response(self, obj: DataTransfer) -> str:
        return Truncator(obj.response_data).chars(60)


@admin.register(DiagnosticsStatusNotification)
class DiagnosticsStatusNotificationAdmin(ReportedByChargePointAdmin):
    list_display = ["received_at", "charge_point", "status"]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "received_at"


@admin.register(FirmwareStatusNotification)
class FirmwareStatusNotificationAdmin(ReportedByChargePointAdmin):
    list_display = ["received_at", "charge_point", "status"]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "received_at"

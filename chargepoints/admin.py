"""Operator views of charge points, their connectors, and what they report.

What a charge point reports (identity, connection state, statuses, logs) is shown
read-only: the protocol is its only source. The operator decides the registration
status (what BootNotification answers) and may register a charge point ahead of its
first connection (needed when LEVITY_AUTO_REGISTER is false).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.text import Truncator

from . import security
from .forms import OPERATIONS
from .models import (
    ApiToken,
    CertificateSigningRequest,
    ChargePoint,
    ChargePointCommand,
    ChargePointStatus,
    CommandStatus,
    ConfigurationKey,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    LogStatusNotification,
    RegistrationStatus,
    SecurityEvent,
    ServerProcess,
    SignedFirmwareStatusNotification,
    StatusNotification,
)
from .services import BOOT_IDENTITY_FIELDS, STATUS_FIELDS

# The session layer (.session: commands, onboarding, the consumer's id pattern) is
# imported where an admin page or action uses it, not here: admin autodiscovery imports
# this module in every manage.py command, which needs none of it.

#: What the session records about a charge point's connection (read-only here).
CONNECTION_FIELDS = (
    "is_connected",
    "remote_address",
    "connected_at",
    "disconnected_at",
    "last_seen_at",
    "last_heartbeat_at",
    "last_boot_at",
    "created_at",
)
#: The admin permission that allows sending commands.
SEND_PERMISSION = "chargepoints.add_chargepointcommand"
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


class ReportedInline(admin.TabularInline):
    """Rows the charge point reports, listed on its page: never added, edited or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def admin_url(model, action: str = "changelist", *args, **query) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{action}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


def charge_point_link(charge_point: ChargePoint) -> str:
    return format_html('<a href="{}">{}</a>', admin_url(ChargePoint, "change", charge_point.pk), charge_point)


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


class ConnectorInline(ReportedInline):
    model = Connector
    fields = [
        "connector_id",
        *STATUS_FIELDS,
        "status_timestamp",
        "updated_at",
    ]


class StatusHistoryInline(ReportedInline):
    """The latest status notifications; ChargePointAdmin limits the rows."""

    model = StatusNotification
    verbose_name_plural = f"Recent status notifications (latest {RECENT_STATUS_ROWS})"
    fields = [
        "received_at",
        "connector_id",
        "status",
        "error_code",
        "info",
        "vendor_error_code",
        "timestamp",
    ]

    @staticmethod
    def recent(charge_point: ChargePoint) -> QuerySet:
        latest = list(
            StatusNotification.objects.filter(charge_point=charge_point)
            .order_by("-received_at", "-id")
            .values_list("pk", flat=True)[:RECENT_STATUS_ROWS]
        )
        return StatusNotification.objects.filter(pk__in=latest).order_by("-received_at", "-id")


class SecurityEventInline(ReportedInline):
    """The latest security events; ChargePointAdmin limits the rows."""

    model = SecurityEvent
    verbose_name_plural = f"Recent security events (latest {RECENT_STATUS_ROWS})"
    fields = ["received_at", "type", "timestamp", "tech_info"]

    @staticmethod
    def recent(charge_point: ChargePoint) -> QuerySet:
        latest = list(
            SecurityEvent.objects.filter(charge_point=charge_point)
            .order_by("-received_at", "-id")
            .values_list("pk", flat=True)[:RECENT_STATUS_ROWS]
        )
        return SecurityEvent.objects.filter(pk__in=latest).order_by("-received_at", "-id")


class ChargePointForm(forms.ModelForm):
    class Meta:
        model = ChargePoint
        fields = ["charge_point_id", "registration_status", "security_profile"]

    def clean_charge_point_id(self) -> str:
        from .session.consumer import CHARGE_POINT_ID

        value = self.cleaned_data["charge_point_id"]
        if not CHARGE_POINT_ID.match(value):
            raise forms.ValidationError(
                "Use 1 to 48 characters from A-Z a-z 0-9 . _ : @ + ~ * - "
                "(the id the charge point puts at the end of its WebSocket URL)."
            )
        return value


class ConfigurationKeyInline(admin.TabularInline):
    """The keys the charge point reported in its last GetConfiguration answer."""

    model = ConfigurationKey
    extra = 0
    fields = ["key", "value", "readonly", "updated_at"]
    readonly_fields = fields  # type: ignore[assignment]  # fields are plain names here
    can_delete = False
    verbose_name_plural = "configuration (as last reported by GetConfiguration)"

    def has_add_permission(self, request, obj=None):
        return False


def _operation_action(operation: str):
    form_class = OPERATIONS[operation]

    @admin.action(description=f"{form_class.label}…", permissions=["send_command"])
    def action(modeladmin, request, queryset):
        return modeladmin.command_form_page(request, operation, queryset)

    action.__name__ = f"command_{operation.replace('-', '_')}"
    return action


@admin.register(ChargePoint)
class ChargePointAdmin(admin.ModelAdmin):
    form = ChargePointForm
    list_display = [
        "charge_point_id",
        "online",
        "registration_status",
        "security_profile",
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
        "security_profile",
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
    actions = [
        "accept_registration",
        "set_registration_pending",
        "reject_registration",
        "generate_password",
        "rotate_password",
        *(_operation_action(operation) for operation in OPERATIONS),
    ]
    inlines = [ConnectorInline, ConfigurationKeyInline, StatusHistoryInline, SecurityEventInline]
    fieldsets = [
        (None, {"fields": ["charge_point_id", "registration_status", "activity"]}),
        ("Security (docs/security.md)", {"fields": ["security_profile", "password_state"]}),
        (
            "Connection",
            {"fields": CONNECTION_FIELDS},
        ),
        (
            "Identity (from BootNotification)",
            {"fields": list(BOOT_IDENTITY_FIELDS)},
        ),
    ]
    protocol_fields = ["activity", "password_state", *CONNECTION_FIELDS, *BOOT_IDENTITY_FIELDS]

    @admin.display(description="password")
    def password_state(self, obj: ChargePoint) -> str:
        if obj.pk is None or not obj.password_hash:
            return "none (use the action “Generate password”)"
        state = f"set {obj.password_changed_at:%Y-%m-%d %H:%M} UTC" if obj.password_changed_at else "set"
        if obj.new_password_hash:
            state += "; a rotated one is sent and valid too until the charge point connects with it"
        return state

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("connectors")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        # The id is the charge point's own: set once, when registering it by hand.
        return self.protocol_fields if obj is None else ["charge_point_id", *self.protocol_fields]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, (StatusHistoryInline, SecurityEventInline)) and obj is not None and obj.pk:
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
        query: dict[str, Any] = {"charge_point__id__exact": obj.pk}
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
            (admin_url(SecurityEvent, **query), "security events"),
            (admin_url(SignedFirmwareStatusNotification, **query), "signed firmware status"),
            (admin_url(LogStatusNotification, **query), "log status"),
            (admin_url(CertificateSigningRequest, **query), "certificate requests"),
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def has_send_command_permission(self, request) -> bool:
        return request.user.has_perm(SEND_PERMISSION)

    def get_urls(self):
        return [
            path(
                "command/<str:operation>/",
                self.command_view,
                name="chargepoints_chargepoint_command",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        charge_point = self.get_object(request, object_id)
        if charge_point is not None:
            if self.has_send_command_permission(request):
                extra_context["command_forms"] = [
                    {
                        "label": form_class.label,
                        "form": form_class(auto_id=f"id_{operation}_%s"),
                        "url": reverse("admin:chargepoints_chargepoint_command", args=[operation]),
                    }
                    for operation, form_class in OPERATIONS.items()
                ]
            extra_context["recent_commands"] = charge_point.commands.all()[:10]
            extra_context["commands_url"] = (
                reverse("admin:chargepoints_chargepointcommand_changelist")
                + f"?charge_point__id__exact={charge_point.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def command_form_page(self, request, operation: str, queryset):
        """The list action's page: the command's form, for the selected charge points."""
        form_class = OPERATIONS[operation]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{form_class.label}: {queryset.count()} charge point(s)",
            "opts": self.model._meta,
            "charge_points": list(queryset),
            "form": form_class(),
            "label": form_class.label,
            "action_url": reverse("admin:chargepoints_chargepoint_command", args=[operation]),
            "next": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/chargepoints/chargepoint/command_form.html", context)

    async def command_view(self, request, operation: str):
        """Send a command to one or more charge points and report each answer.

        An async view: it waits for the charge points on the event loop, holding
        no thread. Permission checks are those of admin_view (which is sync-only).
        """
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if operation not in OPERATIONS:
            raise Http404(f"No command {operation!r}")
        if not await sync_to_async(user.has_perm)(SEND_PERMISSION):
            raise PermissionDenied
        next_url = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
            next_url = reverse("admin:chargepoints_chargepoint_changelist")
        form = OPERATIONS[operation](request.POST)
        charge_point_ids = request.POST.getlist("charge_point")
        if not form.is_valid():
            errors = "; ".join(f"{name}: {' '.join(str(m) for m in e)}" for name, e in form.errors.items())
            messages.error(request, f"{form.label} not sent: {errors}")
            return HttpResponseRedirect(next_url)
        from .session import commands

        results = await asyncio.gather(
            *(
                commands.send_command(
                    cp_id,
                    form.action,
                    form.payload(),
                    requested_by=f"user:{user.get_username()}",
                    user_id=user.pk,
                )
                for cp_id in charge_point_ids
            ),
            return_exceptions=True,
        )
        for cp_id, result in zip(charge_point_ids, results, strict=True):
            level, text = _report(cp_id, form.action, result)
            messages.add_message(request, level, text)
        return HttpResponseRedirect(next_url)

    def _set_registration(self, request, queryset, status: str) -> None:
        count = queryset.update(registration_status=status)
        self.message_user(
            request,
            f"{count} charge point(s) will be answered {status} at their next BootNotification.",
            messages.SUCCESS,
        )

    @admin.action(description="Accept registration (and trigger a new BootNotification)")
    def accept_registration(self, request, queryset):
        from .session import onboarding

        ids = list(queryset.values_list("charge_point_id", flat=True))
        accepted = async_to_sync(onboarding.accept)(
            ids, requested_by=f"user:{request.user.get_username()}", user_id=request.user.pk
        )
        self.message_user(request, f"{len(accepted)} charge point(s) accepted.", messages.SUCCESS)
        for item in accepted:
            if item.trigger is not None:
                level, text = _report(item.charge_point_id, "TriggerMessage", item.trigger)
                messages.add_message(request, level, text)

    @admin.action(description="Generate password (shown once)", permissions=["change"])
    def generate_password(self, request, queryset):
        passwords = [
            (
                cp.charge_point_id,
                security.effective_profile(cp.security_profile),
                security.set_password(cp.charge_point_id),
            )
            for cp in queryset
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "New passwords",
            "opts": self.model._meta,
            "passwords": passwords,
        }
        response = TemplateResponse(request, "admin/chargepoints/chargepoint/passwords.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(
        description="Rotate password (ChangeConfiguration AuthorizationKey)", permissions=["send_command"]
    )
    def rotate_password(self, request, queryset):
        from .session import commands, onboarding

        for cp_id in queryset.values_list("charge_point_id", flat=True):
            try:
                command = async_to_sync(onboarding.rotate_password)(
                    cp_id, requested_by=f"user:{request.user.get_username()}", user_id=request.user.pk
                )
            except commands.CommandError as exc:
                messages.error(request, f"{cp_id}: password not rotated: {exc}")
                continue
            level, text = _report(cp_id, "ChangeConfiguration AuthorizationKey", command)
            messages.add_message(request, level, text)

    @admin.action(description="Set registration Pending")
    def set_registration_pending(self, request, queryset):
        self._set_registration(request, queryset, RegistrationStatus.PENDING)

    @admin.action(description="Reject registration")
    def reject_registration(self, request, queryset):
        self._set_registration(request, queryset, RegistrationStatus.REJECTED)


def _report(cp_id: str, action: str, result) -> tuple[int, str]:
    """One line for the operator about one charge point's answer."""
    from .session import commands

    if isinstance(result, commands.CommandError):
        return messages.ERROR, f"{cp_id}: {action} not sent: {result}"
    if isinstance(result, BaseException):
        return messages.ERROR, f"{cp_id}: {action} failed: {type(result).__name__}: {result}"
    command = result
    if command.status == CommandStatus.ACCEPTED:
        answer = command.response or {}
        if action == "GetConfiguration":
            keys = answer.get("configurationKey") or []
            unknown = answer.get("unknownKey") or []
            detail = f"{len(keys)} key(s) stored" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        else:
            detail = json.dumps(answer, sort_keys=True)
        return messages.SUCCESS, f"{cp_id} accepted {action}: {detail}"
    if command.status == CommandStatus.REJECTED:
        return messages.WARNING, f"{cp_id} rejected {action}: {command.response_status}"
    if command.status == CommandStatus.CALLERROR:
        return (
            messages.ERROR,
            f"{cp_id} answered {action} with CALLERROR {command.error_code}: {command.error_description}",
        )
    return messages.ERROR, f"{cp_id}: {action} {command.status}: {command.error_description}"


@admin.register(ChargePointCommand)
class ChargePointCommandAdmin(admin.ModelAdmin):
    """Every command sent, read-only: the record of who asked what and what came back."""

    list_display = [
        "created_at",
        "charge_point",
        "action",
        "status",
        "response_status",
        "error_code",
        "duration_ms",
        "requested_by",
    ]
    list_filter = ["status", "action", "password_rotation", "created_at", "charge_point"]
    list_select_related = ["charge_point"]
    search_fields = ["charge_point__charge_point_id", "message_id", "requested_by"]
    date_hierarchy = "created_at"
    fields = [
        "charge_point",
        "action",
        "message_id",
        "status",
        "request_json",
        "response_json",
        "response_status",
        "error_code",
        "error_description",
        "error_details_json",
        "timeout",
        "requested_by",
        "created_at",
        "sent_at",
        "answered_at",
        "duration_ms",
        "password_rotation",
        "password_rotation_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields are plain names here

    @admin.display(description="request")
    def request_json(self, obj):
        return _pretty(obj.request)

    @admin.display(description="response")
    def response_json(self, obj):
        return _pretty(obj.response)

    @admin.display(description="error details")
    def error_details_json(self, obj):
        return _pretty(obj.error_details)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _pretty(value):
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: the plaintext is shown once, on the page after creation, and never stored."""

    list_display = [
        "name",
        "kind",
        "scope",
        "prefix",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind", "scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scope", "expires_at"]
        return list(self.list_display)  # a token's page shows what its row in the list does

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["kind", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            plaintext = ApiToken.generate()
            obj.set_token(plaintext)
            obj.created_by = request.user
            request._levity_token_plaintext = plaintext
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(request, "_levity_token_plaintext", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"API token “{obj.name}” created",
            "opts": self.model._meta,
            "token": obj,
            "plaintext": plaintext,
        }
        return TemplateResponse(request, "admin/chargepoints/apitoken/created.html", context)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(ServerProcess)
class ServerProcessAdmin(admin.ModelAdmin):
    """The running server processes (chargepoints.session.processes): viewable, kept by the processes."""

    list_display = ["__str__", "started_at", "alive_at", "charge_points"]
    fields = ["id", "hostname", "pid", "started_at", "alive_at"]
    readonly_fields = fields  # type: ignore[assignment]  # fields are plain names here

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="charge points online")
    def charge_points(self, obj: ServerProcess) -> int:
        return ChargePoint.objects.filter(server_process=obj.id, is_connected=True).count()


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
        *STATUS_FIELDS,
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


# --- the security extension ------------------------------------------------------------


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReportedByChargePointAdmin):
    list_display = ["received_at", "charge_point", "type", "timestamp", "tech_info"]
    list_filter = ["type"]
    search_fields = ["charge_point__charge_point_id", "type", "tech_info"]
    date_hierarchy = "received_at"


@admin.register(SignedFirmwareStatusNotification)
class SignedFirmwareStatusNotificationAdmin(ReportedByChargePointAdmin):
    list_display = ["received_at", "charge_point", "status", "request_id"]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "received_at"


@admin.register(LogStatusNotification)
class LogStatusNotificationAdmin(ReportedByChargePointAdmin):
    list_display = ["received_at", "charge_point", "status", "request_id"]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "received_at"


@admin.register(CertificateSigningRequest)
class CertificateSigningRequestAdmin(ReportedByChargePointAdmin):
    list_display = [
        "received_at",
        "charge_point",
        "status",
        "outcome",
        "serial_number",
        "not_after",
        "short_reason",
    ]
    list_filter = ["outcome", "status"]
    search_fields = ["charge_point__charge_point_id", "serial_number"]
    date_hierarchy = "received_at"

    @admin.display(description="reason")
    def short_reason(self, obj: CertificateSigningRequest) -> str:
        return Truncator(obj.reason).chars(80)

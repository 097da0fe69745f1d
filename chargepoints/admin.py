import asyncio
import json

from asgiref.sync import sync_to_async
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from . import commands
from .forms import OPERATIONS
from .models import (
    ApiToken,
    ChargePoint,
    ChargePointCommand,
    CommandStatus,
    ConfigurationKey,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    StatusNotification,
)

#: The admin permission that allows sending commands.
SEND_PERMISSION = "chargepoints.add_chargepointcommand"


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    readonly_fields = [f.name for f in Connector._meta.fields if f.name != "id"]
    can_delete = False


class ConfigurationKeyInline(admin.TabularInline):
    """The keys the charge point reported in its last GetConfiguration answer."""

    model = ConfigurationKey
    extra = 0
    fields = ["key", "value", "readonly", "updated_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "configuration (as last reported by GetConfiguration)"

    def has_add_permission(self, request, obj=None):
        return False


def _operation_action(operation: str):
    form_class = OPERATIONS[operation]

    def action(modeladmin, request, queryset):
        return modeladmin.command_form_page(request, operation, queryset)

    action.__name__ = f"command_{operation.replace('-', '_')}"
    action.short_description = f"{form_class.label}…"
    action.allowed_permissions = ("send_command",)
    return action


@admin.register(ChargePoint)
class ChargePointAdmin(admin.ModelAdmin):
    list_display = [
        "charge_point_id",
        "is_connected",
        "registration_status",
        "charge_point_vendor",
        "charge_point_model",
        "firmware_version",
        "last_seen_at",
    ]
    list_filter = ["is_connected", "registration_status", "charge_point_vendor"]
    search_fields = ["charge_point_id", "charge_point_serial_number", "charge_box_serial_number"]
    inlines = [ConnectorInline, ConfigurationKeyInline]
    actions = [_operation_action(operation) for operation in OPERATIONS]

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
        return TemplateResponse(
            request, "admin/chargepoints/chargepoint/command_form.html", context
        )

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
            errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
            messages.error(request, f"{form.label} not sent: {errors}")
            return HttpResponseRedirect(next_url)
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
        for cp_id, result in zip(charge_point_ids, results):
            level, text = _report(cp_id, form.action, result)
            messages.add_message(request, level, text)
        return HttpResponseRedirect(next_url)


def _report(cp_id: str, action: str, result) -> tuple[int, str]:
    """One line for the operator about one charge point's answer."""
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
            detail = f"{len(keys)} key(s) stored" + (
                f"; unknown: {', '.join(unknown)}" if unknown else ""
            )
        else:
            detail = json.dumps(answer, sort_keys=True)
        return messages.SUCCESS, f"{cp_id} accepted {action}: {detail}"
    if command.status == CommandStatus.REJECTED:
        return messages.WARNING, f"{cp_id} rejected {action}: {command.response_status}"
    if command.status == CommandStatus.CALLERROR:
        return (
            messages.ERROR,
            f"{cp_id} answered {action} with CALLERROR {command.error_code}: "
            f"{command.error_description}",
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
    list_filter = ["status", "action", "created_at", "charge_point"]
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
    ]
    readonly_fields = fields

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

    list_display = ["name", "kind", "prefix", "created_by", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "expires_at"]
        return ["name", "kind", "prefix", "created_by", "created_at", "expires_at", "last_used_at", "revoked_at"]

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


for model in (StatusNotification, DataTransfer, DiagnosticsStatusNotification, FirmwareStatusNotification):
    admin.site.register(model)

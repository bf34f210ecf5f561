"""The admin of operators, their API tokens and groups: every change made here is audited.
Tokens are listed by prefix only; their digests never leave the database, and they are
issued by ``create_operator --token``, not here."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest

from audit.admin import AuditedAdminMixin
from operators.login import AdminLoginForm
from operators.models import ApiToken

# Admin logins are limited and audited like the console's (operators.login).
admin.site.login_form = AdminLoginForm


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_subject = "operator"
    audit_target_type = "user"


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    audit_subject = "group"
    audit_target_type = "group"


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdminMixin, admin.ModelAdmin[ApiToken]):
    audit_subject = "token"
    audit_target_type = "token"
    list_display = ["prefix", "user", "created_at", "expires_at"]
    list_filter = ["expires_at"]
    search_fields = ["prefix", "user__username"]
    fields = readonly_fields = ("prefix", "user", "created_at", "expires_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False


for _model, _model_admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)

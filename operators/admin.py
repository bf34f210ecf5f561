"""The admin of operators, their tokens and groups: every change made here is audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from audit.admin import AuditedAdminMixin


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_subject = "operator"
    audit_target_type = "user"


class AuditedTokenAdmin(AuditedAdminMixin, TokenAdmin):
    audit_subject = "token"
    audit_target_type = "token"

    def audit_target(self, obj: TokenProxy) -> tuple[Any, dict[str, Any]]:
        # A token's primary key (and its str()) is the secret itself: name it by its user.
        return obj.user_id, {"name": obj.user.get_username()}


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    audit_subject = "group"
    audit_target_type = "group"


for _model, _model_admin in ((User, AuditedUserAdmin), (TokenProxy, AuditedTokenAdmin), (Group, AuditedGroupAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)

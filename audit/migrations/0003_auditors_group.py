"""The ``auditors`` group: staff in it may view audit events in the admin, nothing more."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_auditors_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran; this one is needed now.
    audit_config = apps.get_app_config("audit")
    audit_config.models_module = True
    create_permissions(audit_config, apps=apps, verbosity=0)
    audit_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="auditors")
    group.permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_auditevent"))


def remove_auditors_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="auditors").delete()


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_chain"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_auditors_group, remove_auditors_group),
    ]

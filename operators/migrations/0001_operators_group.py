"""The ``operators`` group: the role that may use the console and the operator API. Every
user with an API token was an operator before the role existed, so they get it."""

from django.db import migrations


def create_operators_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name="operators")
    User = apps.get_model("auth", "User")
    with_tokens = User.objects.none()
    try:
        Token = apps.get_model("authtoken", "Token")
    except LookupError:
        pass
    else:
        with_tokens = User.objects.filter(pk__in=Token.objects.values("user_id"))
    group.user_set.add(*with_tokens)


def remove_operators_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="operators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_operators_group, remove_operators_group),
    ]

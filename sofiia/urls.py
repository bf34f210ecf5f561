from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, register_converter
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from audit.api import AuditEventListApi
from sofiia import health
from sofiia import openapi as _openapi  # noqa: F401 - registers the schema's extensions
from sofiia.lib.converters import IdConverter

register_converter(IdConverter, "id")

urlpatterns = [
    path("livez", health.livez, name="livez"),
    path("readyz", health.health, name="readyz"),
    path("api/health", health.health, name="health"),
    path("api/audit", AuditEventListApi.as_view(), name="audit-list"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file: no inline script on the page.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("api/", include("chats.urls")),
    path("api/", include("nodes.urls")),
    path("console/", include("chats.console_urls")),
    path("admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url=static("console/favicon.svg")), name="favicon"),
    # django-prometheus' own route, declaring the methods it takes (sofiia.lib.methods).
    path("metrics", require_safe(ExportToDjangoView), name="prometheus-django-metrics"),
    path("", RedirectView.as_view(pattern_name="console:chat-list"), name="home"),
]

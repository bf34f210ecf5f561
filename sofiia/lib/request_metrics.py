"""django-prometheus' request metrics, with every label from a closed set.

Its after-middleware labels requests with the HTTP method as the client sent it (in one
histogram even when it does not recognise it): a client inventing methods would add a
series per name to ``/metrics``. Here a method outside ``KNOWN_METHODS`` is ``other``.
The other labels are the application's own: view names from the URL configuration
(``<unnamed view>`` when nothing matched), status codes, template names, exception types,
``http``/``https``, charsets.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django_prometheus.middleware import PrometheusAfterMiddleware

from sofiia.lib.methods import KNOWN_METHODS

OTHER_METHOD = "other"


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class RequestMetricsMiddleware(PrometheusAfterMiddleware):
    def _method(self, request: HttpRequest) -> str:
        return method_label(request.method)

    def label_metric(self, metric: Any, request: HttpRequest, response: Any = None, **labels: Any) -> Any:
        if "method" in labels:
            labels["method"] = method_label(labels["method"])
        return super().label_metric(metric, request, response, **labels)

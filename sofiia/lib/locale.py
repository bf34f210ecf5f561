"""The language of the console's pages: from the operator's choice (the language cookie set
by the switcher) or the browser's ``Accept-Language``, through Django's ``LocaleMiddleware``.

The JSON API is never translated: its error texts are part of the contract and are read
by programs, so requests under ``/api/`` stay in ``LANGUAGE_CODE`` whatever they ask for.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

UNTRANSLATED_PREFIXES = ("/api/",)


class PageLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(UNTRANSLATED_PREFIXES):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if request.path.startswith(UNTRANSLATED_PREFIXES):
            return response
        return super().process_response(request, response)

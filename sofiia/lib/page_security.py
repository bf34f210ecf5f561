"""Headers of the pages people look at: a strict Content-Security-Policy and no caching.

The policy allows scripts, styles, images and fetches from the console's own origin only —
no inline script or style, no ``eval``, nothing framed, forms posted only to itself — and is
sent on every HTML page the app serves: the console, the Django admin, the API's docs, error
pages. A path under one of ``CSP_PREFIX_POLICIES`` gets that policy instead (the API's docs
allow ``data:`` images, which Swagger UI's stylesheet uses). Pages under ``NO_STORE_PREFIXES``
(the console) are never stored by the browser, so Back after a logout shows nothing and Back
after a send re-renders the chat.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

CSP_HEADER = "Content-Security-Policy"


class PageSecurityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy: str = settings.CONTENT_SECURITY_POLICY
        self.prefix_policies: tuple[tuple[str, str], ...] = tuple(settings.CSP_PREFIX_POLICIES.items())
        self.no_store: tuple[str, ...] = tuple(settings.NO_STORE_PREFIXES)

    def policy_for(self, path: str) -> str:
        return next((policy for prefix, policy in self.prefix_policies if path.startswith(prefix)), self.policy)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        path = request.path
        html = response.get("Content-Type", "").startswith("text/html")
        if html and CSP_HEADER not in response:
            policy = self.policy_for(path)
            if policy:
                response[CSP_HEADER] = policy
        if path.startswith(self.no_store):
            add_never_cache_headers(response)
        return response

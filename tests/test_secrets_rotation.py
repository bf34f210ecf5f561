"""docs/runbooks/secrets-rotation.md, step by step, on live consoles: a mixed fleet during
each rolling restart never refuses the credential clients are using."""

from __future__ import annotations

import re

import pytest
import requests

from audit.keys import key_fingerprint
from audit.models import AuditEvent
from tests.personas import make_persona

pytestmark = pytest.mark.live

OLD_KEY = "audit-key-2026-01-" + "a" * 24
NEW_KEY = "audit-key-2026-07-" + "b" * 24
OLD_SECRET = "old-django-secret-" + "o" * 40
NEW_SECRET = "new-django-secret-" + "n" * 40


def roll(fleet: list, live_console, check, *, clients=(), **env: str) -> None:
    """Restart the fleet one instance at a time with ``env``, checking the mixed fleet each time."""
    for n in range(len(fleet)):
        for client in clients:
            client.close()  # idle keep-alive connections would hold up the graceful stop
        fleet[n].stop()
        fleet[n] = live_console(workers=1, **env)
        check()


def audit_status(console, key: str) -> int:
    response = requests.get(f"{console.base}/api/audit", params={"limit": 1}, headers={"X-Audit-Key": key}, timeout=30)
    return response.status_code


def test_the_audit_key_rotates_with_two_keys_then_one(live_console):
    make_persona("alice")
    fleet = [live_console(workers=1, SOFIIA_AUDIT_KEYS=OLD_KEY), live_console(workers=1, SOFIIA_AUDIT_KEYS=OLD_KEY)]
    assert [audit_status(c, OLD_KEY) for c in fleet] == [200, 200]
    assert [audit_status(c, NEW_KEY) for c in fleet] == [401, 401]

    def old_key_works() -> None:
        assert [audit_status(c, OLD_KEY) for c in fleet] == [200, 200]

    def new_key_works() -> None:
        assert [audit_status(c, NEW_KEY) for c in fleet] == [200, 200]

    # 1. Every instance learns the new key; the old key works throughout.
    roll(fleet, live_console, old_key_works, SOFIIA_AUDIT_KEYS=f"{OLD_KEY},{NEW_KEY}")
    new_key_works()

    # 2. The readers switch to the new key; the trail tells which key each read used.
    readers = set(AuditEvent.objects.filter(action="audit.read", outcome="success").values_list("actor", flat=True))
    assert readers == {f"audit-key:{key_fingerprint(OLD_KEY)}", f"audit-key:{key_fingerprint(NEW_KEY)}"}

    # 3. Every instance forgets the old key; the new key works throughout.
    roll(fleet, live_console, new_key_works, SOFIIA_AUDIT_KEYS=NEW_KEY)
    assert [audit_status(c, OLD_KEY) for c in fleet] == [401, 401]
    for key in (OLD_KEY, NEW_KEY):
        assert not AuditEvent.objects.filter(details__icontains=key).exists()


def console_login(console, username: str, password: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{console.base}/console/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = browser.post(
        f"{console.base}/console/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    return browser


def test_the_django_secret_key_rotates_through_fallbacks(live_console):
    alice = make_persona("alice")
    fleet = [
        live_console(workers=1, DJANGO_SECRET_KEY=OLD_SECRET),
        live_console(workers=1, DJANGO_SECRET_KEY=OLD_SECRET),
    ]
    api = fleet[0].session(alice.token)
    for title in ("one", "two", "three"):
        assert api.post(f"{fleet[0].base}/api/chats", json={"title": title, "agent": "echo"}, timeout=30).ok
    browser = console_login(fleet[0], "alice", alice.password)

    def cursor_from(console) -> str:
        return api.get(f"{console.base}/api/chats", params={"limit": 1}, timeout=30).json()["next_cursor"]

    def page_after(console, cursor: str) -> int:
        return api.get(f"{console.base}/api/chats", params={"limit": 1, "cursor": cursor}, timeout=30).status_code

    def signed_in_everywhere() -> None:
        for console in fleet:
            assert browser.get(f"{console.base}/console/", allow_redirects=False, timeout=30).status_code == 200

    old_cursor = cursor_from(fleet[0])

    def everything_still_works() -> None:
        signed_in_everywhere()
        cursors = [old_cursor, *(cursor_from(c) for c in fleet)]
        assert [page_after(c, cursor) for c in fleet for cursor in cursors] == [200] * 2 * len(cursors)

    # 1. Every instance learns the new key as a fallback: it verifies, nothing signs with it yet.
    clients = (api, browser)
    roll(fleet, live_console, everything_still_works, clients=clients, DJANGO_SECRET_KEY=OLD_SECRET,
         DJANGO_SECRET_KEY_FALLBACKS=NEW_SECRET)  # fmt: skip
    # 2. The new key signs, the old one verifies. Instances of steps 1 and 2 verify each
    #    other's sessions and cursors, so users moving between them stay signed in.
    roll(fleet, live_console, everything_still_works, clients=clients, DJANGO_SECRET_KEY=NEW_SECRET,
         DJANGO_SECRET_KEY_FALLBACKS=OLD_SECRET)  # fmt: skip
    new_cursor = cursor_from(fleet[0])

    # 3. Once what was signed with the old key no longer matters, the fallback goes.
    def new_signatures_work() -> None:
        signed_in_everywhere()
        assert [page_after(c, new_cursor) for c in fleet] == [200, 200]

    roll(fleet, live_console, new_signatures_work, clients=clients, DJANGO_SECRET_KEY=NEW_SECRET)
    assert [page_after(c, old_cursor) for c in fleet] == [400, 400]
    # One sign-in, kept through the whole rotation; the chats it made are on the trail.
    assert list(AuditEvent.objects.filter(action__startswith="auth.").values_list("action", "actor")) == [
        ("auth.login", "alice")
    ]
    assert AuditEvent.objects.filter(action="chat.create", actor="alice").count() == 3

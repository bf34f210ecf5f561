"""The runbooks: their links resolve, and the release runbook gives the exact commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ops.test_alerts import markdown_anchors

PROJECT = Path(__file__).resolve().parents[2]
RUNBOOKS = PROJECT / "docs/runbooks"
PAGES = [PROJECT / "README.md", *sorted(RUNBOOKS.glob("*.md"))]


def local_links(page: Path) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    return [link for link in links if not re.match(r"^[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_local_link_and_anchor_resolves(page):
    for link in local_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), link
        if anchor:
            assert anchor in markdown_anchors(target.read_text()), link


def test_the_runbooks_exist_and_the_readme_links_them():
    assert {page.name for page in RUNBOOKS.glob("*.md")} >= {"release.md", "rollback.md", "incidents.md"}
    readme_links = local_links(PROJECT / "README.md")
    for name in ("release.md", "rollback.md", "incidents.md"):
        assert f"docs/runbooks/{name}" in readme_links


def test_the_release_runbook_gives_the_exact_commands_in_deploy_order():
    text = (RUNBOOKS / "release.md").read_text()
    for command in (
        "STRICT=1 ops/preflight_sofiia_console.sh",
        'ops/smoke.sh "$BASE"',
        'ops/redis_idempotency_smoke.sh "$BASE_A" "$BASE_B"',
        "ops/generate_release_evidence.sh",
        "python manage.py prune_audit --dry-run",
    ):
        assert command in text, command
    headings = ("### 1. NODA2 precheck", "### 2. NODA1 rollout", "### 3. NODA2 finalize")
    phases = [text.index(heading) for heading in headings]
    assert phases == sorted(phases)

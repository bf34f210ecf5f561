"""Agent replies rendered as Markdown for the console, on the server.

CommonMark with tables and strikethrough, hard line breaks kept (replies are often logs).
Raw HTML is never passed through: it is shown as text. Images are not rendered (the console
loads nothing from elsewhere, and its CSP would refuse it); markdown-it's own link check
already refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` links. Code blocks are
wrapped so the console's script can give each a Copy button.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

_LINK_REL = "nofollow noopener noreferrer"


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.enable(["table", "strikethrough"]).disable("image")
    rules = md.renderer.rules  # type: ignore[attr-defined]
    fence, code_block = rules["fence"], rules["code_block"]

    def wrapped(rule: Any) -> Any:
        def render(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return f'<div class="code">{rule(tokens, idx, options, env)}</div>'

        return render

    def link_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", _LINK_REL)
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("fence", wrapped(fence))
    md.add_render_rule("code_block", wrapped(code_block))
    md.add_render_rule("link_open", link_open)
    return md


_MARKDOWN = _build()


@lru_cache(maxsize=2048)
def render_markdown(text: str) -> SafeString:
    """``text`` as safe HTML; a page of replies renders each distinct text once per process."""
    return mark_safe(_MARKDOWN.render(text))  # noqa: S308 - markdown-it escapes everything; raw HTML is off

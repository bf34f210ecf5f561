"""Agent replies rendered as Markdown for the console, once, when a reply is stored.

A reply comes from a node, so its text is untrusted, and rendering it is CPU work inside a
gevent worker (nothing else on that worker runs meanwhile). :func:`reply_html` therefore
renders it once — the send path stores the result in ``Message.html`` and the pages only copy
it out, never reading the reply's text — and within fixed bounds. A reply past any bound is
stored as its first :data:`PLAIN_SHOWN_MAX_CHARS` characters, escaped, in a ``<pre>`` (with
``data-hidden``, the number of characters left out, when it is longer); the API and the
export carry the whole text. ``html`` is empty only for an empty reply, and for a reply
stored before replies were rendered when stored (migration 0006 renders those); a page
shows such a reply's text as plain text. The bounds:

- :data:`REPLY_MARKDOWN_MAX_CHARS` of input. markdown-it-py parses ordinary replies at about
  1.5 µs a character and hostile ones (thousands of ``[``) at about 10 µs: 32,000 characters
  cost at most about 0.3 s of CPU, once per reply.
- :data:`REPLY_TABLE_MAX_CELLS` table cells in the reply and :data:`REPLY_TABLE_MAX_COLUMNS`
  columns in a table, counted while parsing: a header of many columns over many short lines
  expands to a cell per column and line (4 KB of text became 400,000 cells).
- :data:`REPLY_MAX_NESTING` levels of nested blocks: past markdown-it's own nesting limit the
  rest of a reply is silently dropped, so a reply that reaches it is shown as text instead.
- :data:`REPLY_HTML_MAX_CHARS` of output (a short link renders to ten times its text).

What the HTML may contain is fixed by construction, not filtered afterwards: raw HTML is off
(shown as text), images are off (the console loads nothing from elsewhere and its CSP would
refuse it), markdown-it's link check refuses ``javascript:``, ``vbscript:``, ``file:`` and
``data:`` links, and every token's attributes pass an allow-list before rendering — no
``style`` and no event handler can appear. Table alignment is a class (``align-right``,
``align-center``, ``align-left``) that the stylesheet styles: the console's CSP admits no
inline style. Code blocks are wrapped so the console's script can give each a Copy button.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block import table as table_rule
from markdown_it.token import Token

REPLY_MARKDOWN_MAX_CHARS = 32_000
REPLY_TABLE_MAX_CELLS = 5_000
REPLY_TABLE_MAX_COLUMNS = 64
REPLY_MAX_NESTING = 32
REPLY_HTML_MAX_CHARS = 128_000
# What a page shows of a reply past a bound; the API and the export carry it whole.
PLAIN_SHOWN_MAX_CHARS = 32_000

_LINK_REL = "nofollow noopener noreferrer"
# The only attributes the renderer may write, by tag (markdown-it's escaping covers values).
_ALLOWED_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title", "rel"}),
    "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
    "th": frozenset({"class"}),
    "td": frozenset({"class"}),
}
_ALIGNMENTS = {"text-align:left": "align-left", "text-align:center": "align-center", "text-align:right": "align-right"}
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_CELL_COUNT = "sofiia_table_cells"
_PLAIN_CUT = re.compile(r'<pre class="plain" data-hidden="(\d+)">')

RenderRule = Callable[[Any, Sequence[Token], int, Any, Any], str]
BlockRule = Callable[[StateBlock, int, int, bool], bool]


class _TooComplex(Exception):
    """The reply is past a bound: it is shown as plain text."""


def _bounded_table(table: BlockRule) -> BlockRule:
    """markdown-it's table rule, stopped before the reply's tables pass the cell or column
    bound: the rows it may still read are counted before it reads them."""

    def rule(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        if not table(state, start_line, end_line, True):
            return False
        # The delimiter row (only pipes, dashes, colons and spaces: the rule has just checked)
        # names every column the header has, and each row is filled out to that many cells.
        delimiter = state.src[
            state.bMarks[start_line + 1] + state.tShift[start_line + 1] : state.eMarks[start_line + 1]
        ]
        columns = len(delimiter.strip().strip("|").split("|"))
        if columns > REPLY_TABLE_MAX_COLUMNS:
            raise _TooComplex
        if silent:
            return True
        used = state.env.get(_CELL_COUNT, 0)
        rows_left = (REPLY_TABLE_MAX_CELLS - used) // columns - 1
        if rows_left < 0:
            raise _TooComplex
        capped_end = min(end_line, start_line + 2 + rows_left)
        before = len(state.tokens)
        table(state, start_line, capped_end, False)
        cells = sum(1 for token in state.tokens[before:] if token.type in ("th_open", "td_open"))
        state.env[_CELL_COUNT] = used + cells
        # Stopped by the cap rather than by the table's end (or exactly at both: counted as over).
        if capped_end < end_line and state.line >= capped_end:
            raise _TooComplex
        return True

    return rule


def _sanitise(tokens: Sequence[Token]) -> None:
    """Keep only the allowed attributes of every token; alignment becomes a class."""
    for token in tokens:
        if token.children:
            _sanitise(token.children)
        if not token.attrs:
            continue
        allowed = _ALLOWED_ATTRS.get(token.tag, frozenset())
        attrs = {name: value for name, value in token.attrs.items() if name in allowed}
        if token.tag in ("th", "td"):
            alignment = _ALIGNMENTS.get(str(token.attrs.get("style", "")))
            attrs = {"class": alignment} if alignment else {}
        token.attrs = attrs


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False, "maxNesting": REPLY_MAX_NESTING})
    md.enable(["table", "strikethrough"]).disable("image")
    # The same place and the same "alt" (a table may interrupt a paragraph) as the rule it wraps.
    md.block.ruler.at("table", _bounded_table(table_rule), {"alt": ["paragraph", "reference"]})
    rules = md.renderer.rules  # type: ignore[attr-defined]
    fence, code_block = rules["fence"], rules["code_block"]

    def wrapped(rule: Any) -> RenderRule:
        def render(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            token = tokens[idx]
            # The info string becomes a class; anything but a plain language name is dropped.
            language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            if language and not _LANGUAGE.fullmatch(language):
                token.info = ""
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


def _too_deep(tokens: Sequence[Token]) -> bool:
    # markdown-it stops parsing (and drops the rest) once a block opens at its nesting limit.
    return any(
        token.level >= REPLY_MAX_NESTING - 1 or (token.children is not None and _too_deep(token.children))
        for token in tokens
    )


def reply_html(text: str) -> str:
    """The agent reply ``text`` as HTML safe to put in a page as it is: its Markdown rendered,
    or, past a bound (see the module's notes), its start as escaped preformatted text."""
    rendered = _markdown_html(text)
    return rendered if rendered is not None else _plain_html(text)


def reply_hidden_chars(html: str) -> int:
    """How many characters of its reply the stored ``html`` leaves out (0: none)."""
    found = _PLAIN_CUT.match(html)
    return int(found.group(1)) if found else 0


def _markdown_html(text: str) -> str | None:
    if len(text) > REPLY_MARKDOWN_MAX_CHARS:
        return None
    try:
        tokens = _MARKDOWN.parse(text, {})
    except _TooComplex:
        return None
    if _too_deep(tokens):
        return None
    _sanitise(tokens)
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return html if len(html) <= REPLY_HTML_MAX_CHARS else None


def _plain_html(text: str) -> str:
    shown = text[:PLAIN_SHOWN_MAX_CHARS]
    hidden = len(text) - len(shown)
    cut = f' data-hidden="{hidden}"' if hidden else ""
    # A newline right after <pre> is dropped by the HTML parser, so the text's own first
    # line break (if it has one) survives.
    return f'<pre class="plain"{cut}>\n{escape(shown)}</pre>'


def reply_preview(text: str, *, limit: int, cut: bool = False) -> str:
    """A reply's text as one line of plain text for a list, at most ``limit`` characters:
    Markdown's marks left out, the words kept. ``cut``: ``text`` is the start of a longer
    reply, whose last word may be cut in two (it is left out, and the line ends with "…")."""
    text = text[: limit * 2]
    if cut:
        text = text.rsplit(maxsplit=1)[0] if len(text.split()) > 1 else text
    try:
        tokens = _MARKDOWN.parse(text, {})
    except _TooComplex:
        blocks = [text]
    else:
        blocks = [_inline_text(token) if token.type == "inline" else token.content for token in tokens
                  if token.type in ("inline", "fence", "code_block")]  # fmt: skip
    return one_line(" ".join(blocks), limit=limit, cut=cut)


def one_line(text: str, *, limit: int, cut: bool = False) -> str:
    """``text`` on one line, at most ``limit`` characters, ending with "…" when shortened."""
    line = " ".join(text.split())
    if len(line) > limit:
        line, cut = line[: limit - 1].rstrip(), True
    return line + "…" if cut else line


def _inline_text(token: Token) -> str:
    return "".join(
        child.content if child.type in ("text", "code_inline") else " "
        for child in token.children or ()
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    )

"""chats.markdown: a reply rendered once, within bounds, to HTML that is safe by construction."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from chats.markdown import (
    PLAIN_SHOWN_MAX_CHARS,
    REPLY_HTML_MAX_CHARS,
    REPLY_MARKDOWN_MAX_CHARS,
    REPLY_MAX_NESTING,
    REPLY_TABLE_MAX_CELLS,
    REPLY_TABLE_MAX_COLUMNS,
    reply_hidden_chars,
    reply_html,
    reply_preview,
)

# Everything the renderer may write: these tags, these attributes, these classes.
ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "code", "pre", "div", "a", "ul", "ol", "li", "blockquote", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRS = {"a": {"href", "title", "rel"}, "ol": {"start"}, "code": {"class"}, "div": {"class"},
                 "th": {"class"}, "td": {"class"}}  # fmt: skip
# What a browser takes for a URL's scheme (WHATWG URL); anything else is a relative address.
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
SAFE_SCHEMES = {"http:", "https:", "mailto:"}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def assert_only_allowed(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        assert set(attrs) <= ALLOWED_ATTRS.get(tag, set()), (tag, attrs)
        if tag == "a":
            href = "".join((attrs.get("href") or "").split()).lower()
            scheme = SCHEME.match(href)
            assert scheme is None or scheme.group() in SAFE_SCHEMES, href
            assert attrs["rel"] == "nofollow noopener noreferrer"
        for name in ("class",):
            value = attrs.get(name)
            if value is not None:
                assert value in {"code", "align-left", "align-center", "align-right"} or (
                    value.startswith("language-") and value[9:].replace("-", "").replace("+", "").isalnum()
                ), value


def is_plain(html: str) -> bool:
    """Whether the reply was left as escaped preformatted text (past a bound)."""
    return html.startswith('<pre class="plain"')


def table(rows: int, columns: int, cell: str = "v") -> str:
    header = "| " + " | ".join(f"h{n}" for n in range(columns)) + " |\n"
    delimiter = "|" + "---|" * columns + "\n"
    return header + delimiter + ("| " + " | ".join(cell for _ in range(columns)) + " |\n") * rows


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    '[x](http://e.org "a" onmouseover="alert(1))',
    '[x](http://e.org "\\" onmouseover=\\"alert(1)")',
    '[x](http://e.org/"onmouseover="alert(1))',
    "![i](http://e.org/i.png) ![j](javascript:alert(1))",
    '```"><script>alert(1)</script>\ncode\n```',
    "``` js onclick=alert(1)\ncode\n```",
    '```js"onclick="alert(1)\ncode\n```',
    "| a | b |\n|:-:|--:|\n| <b onclick=alert(1)>x</b> | [y](javascript:alert(1)) |",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!-- comment --><style>body{display:none}</style>",
    '<svg onload="alert(1)"></svg>',
    "*<u>emphasis</u>* **<iframe src=//e.org>**",
    '<http://e.org/"><script>alert(1)</script>>',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_replies_render_to_nothing_but_allowed_tags_and_attributes(text):
    html = reply_html(text)
    assert_only_allowed(html)
    assert "<script" not in html
    assert "<img" not in html
    assert "<svg" not in html
    assert "<iframe" not in html


def test_raw_html_is_shown_as_text():
    html = reply_html('**bold** <script>alert(1)</script> <b onclick="x()">b</b>')
    assert html == (
        "<p><strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt; "
        "&lt;b onclick=&quot;x()&quot;&gt;b&lt;/b&gt;</p>\n"
    )


def test_a_link_keeps_its_address_and_title_escaped():
    html = reply_html('[docs](https://e.org/a?b=1&c=2 "say \\"hi\\"") and [bad](javascript:alert(1))')
    assert (
        '<a href="https://e.org/a?b=1&amp;c=2" title="say &quot;hi&quot;" rel="nofollow noopener noreferrer">docs</a>'
        in html
    )
    assert "[bad](javascript:alert(1))" in html


def test_a_code_block_keeps_a_plain_language_name_only():
    assert reply_html("```c++\nx\n```") == '<div class="code"><pre><code class="language-c++">x\n</code></pre>\n</div>'
    assert reply_html('```a"b\nx\n```') == '<div class="code"><pre><code>x\n</code></pre>\n</div>'


def test_table_alignment_is_a_class_and_nothing_has_a_style():
    html = reply_html("| left | centre | right | none |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |")
    assert "style" not in html
    assert '<th class="align-left">left</th>' in html
    assert '<th class="align-center">centre</th>' in html
    assert '<td class="align-right">3</td>' in html
    assert "<td>4</td>" in html
    assert_only_allowed(html)


def test_a_table_of_3_9_mb_is_left_as_its_escaped_start():
    text = "<script>alert(1)</script>\n" + table(40_000, 10, cell="0.12345")
    assert len(text) > 3_900_000
    html = reply_html(text)
    hidden = len(text) - PLAIN_SHOWN_MAX_CHARS
    assert html.startswith(f'<pre class="plain" data-hidden="{hidden}">\n&lt;script&gt;alert(1)&lt;/script&gt;\n| h0 |')
    assert html.endswith("</pre>")
    assert len(html) < PLAIN_SHOWN_MAX_CHARS * 1.1
    assert reply_hidden_chars(html) == hidden
    assert elements(html) == [("pre", {"class": "plain", "data-hidden": str(hidden)})]


def test_plain_text_is_escaped_whole_and_keeps_its_first_line_break():
    text = "\n\"quoted\" & <b onclick='x'>tags</b>\n" + ">" * 10_000
    html = reply_html(text)
    escaped = "&quot;quoted&quot; &amp; &lt;b onclick=&#x27;x&#x27;&gt;tags&lt;/b&gt;"
    assert html == f'<pre class="plain">\n\n{escaped}\n{"&gt;" * 10_000}</pre>'
    assert reply_hidden_chars(html) == 0
    assert elements(html) == [("pre", {"class": "plain"})]


def test_a_table_under_the_size_bound_with_too_many_cells_is_left_for_plain_text():
    columns = 10
    rows_allowed = REPLY_TABLE_MAX_CELLS // columns - 1  # the header row's cells count too
    within = table(rows_allowed, columns)
    assert len(within) < REPLY_MARKDOWN_MAX_CHARS
    assert reply_html(within).count("<td>") == rows_allowed * columns
    assert is_plain(reply_html(table(rows_allowed + 5, columns)))


def test_the_cells_of_all_tables_of_a_reply_count_together():
    small = table(4, 5)  # 25 cells with its header
    many = "\n".join([small] * (REPLY_TABLE_MAX_CELLS // 25 + 1))
    assert len(many) < REPLY_MARKDOWN_MAX_CHARS
    assert is_plain(reply_html(many))
    assert reply_html("\n".join([small] * 10)).count("<table>") == 10


def test_a_header_of_many_columns_over_short_lines_is_not_expanded_into_cells():
    # 4 KB that a renderer fills out to a cell per column and line: 400,000 cells.
    text = "|a" * 200 + "|\n" + "|-" * 200 + "|\n" + "x\n" * 2000
    assert len(text) < 5_000
    assert is_plain(reply_html(text))
    narrow = "|a" * REPLY_TABLE_MAX_COLUMNS + "|\n" + "|-" * REPLY_TABLE_MAX_COLUMNS + "|\n" + "x\n" * 10
    assert reply_html(narrow).count("<td>") == REPLY_TABLE_MAX_COLUMNS * 10
    wide = "|a" * (REPLY_TABLE_MAX_COLUMNS + 1) + "|\n" + "|-" * (REPLY_TABLE_MAX_COLUMNS + 1) + "|\n"
    assert is_plain(reply_html(wide))


def test_a_line_of_pipes_that_is_no_table_does_not_count_as_one():
    html = reply_html("|" * 500 + "\n\nplain words")
    assert html.startswith("<p>|||")
    assert "<table" not in html


def test_deep_nesting_is_left_for_plain_text_rather_than_cut():
    assert is_plain(reply_html(">" * 10_000 + " the end"))
    assert is_plain(reply_html("".join("  " * depth + "- item\n" for depth in range(REPLY_MAX_NESTING))))
    nested = reply_html("> > > quoted\n\n- a\n  - b\n    - c")
    assert nested.count("<blockquote>") == 3
    assert "quoted" in nested
    assert nested.count("<ul>") == 3


def test_a_reply_over_the_size_bound_is_left_for_plain_text():
    assert reply_html("word " * (REPLY_MARKDOWN_MAX_CHARS // 5)).startswith("<p>word word")
    assert is_plain(reply_html("word " * (REPLY_MARKDOWN_MAX_CHARS // 5 + 1)))


def test_a_reply_whose_html_would_be_too_large_is_left_for_plain_text():
    links = "[a](b)" * (REPLY_MARKDOWN_MAX_CHARS // 6)
    assert len(links) <= REPLY_MARKDOWN_MAX_CHARS
    assert is_plain(reply_html(links))
    few = "[a](b)" * 100
    assert 0 < len(reply_html(few)) <= REPLY_HTML_MAX_CHARS


def test_a_preview_is_plain_text_on_one_line():
    text = "## Result\n\n**Bold** and `code`, [a link](http://e.org)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- *x*y"
    assert reply_preview(text, limit=100) == "Result Bold and code, a link a b 1 2 xy"


def test_a_preview_is_bounded():
    preview = reply_preview("word " * 1000, limit=100)
    assert len(preview) == 100
    assert preview.endswith("…")
    assert reply_preview("one **two** thr", limit=100, cut=True) == "one two…"
    assert reply_preview("|a" * 100 + "|\n" + "|-" * 100 + "|", limit=100).startswith("|a|a")

"""User-given names in the runs table's markdown render as text, and still link the run."""

from __future__ import annotations

from dashboard.components import markdown_text, run_link, runs_table_rows


def test_markdown_text_escapes_what_markdown_would_interpret() -> None:
    name = "x](https://evil.example) [x *b* _i_ `c` <b>h</b> \\ !&amp; ~~s~~"
    escaped = markdown_text(name)
    # Every special character is preceded by a backslash; unescaping gives the name back.
    specials = set("\\`*_[]()<>!&~")
    i = 0
    plain = []
    while i < len(escaped):
        if escaped[i] == "\\":
            assert escaped[i + 1] in specials, escaped[i:]
            plain.append(escaped[i + 1])
            i += 2
            continue
        assert escaped[i] not in specials, (escaped, i)
        plain.append(escaped[i])
        i += 1
    assert "".join(plain) == name
    assert markdown_text("a\nb\r\n  c") == "a b c"  # no line break inside a table cell


def test_run_links_still_point_at_the_run() -> None:
    assert run_link("x](https://evil.example) [x", "run-1") == (
        "[x\\]\\(https://evil.example\\) \\[x](/run/run-1)"
    )
    rows = runs_table_rows([{
        "id": "r2", "name": "a_b", "parent_id": "r1.x", "status": "running", "preset": "uci",
        "epochs_total": 5, "created_at": "2026-01-01T00:00:00",
    }])
    assert rows[0]["run"] == "[a\\_b](/run/r2)"
    assert rows[0]["parent"] == "[r1.x](/run/r1.x)"

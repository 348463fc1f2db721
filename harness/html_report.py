"""report.html: report.md as one self-contained page (its tables as HTML tables, its plots
embedded), for a browser or a CI artifact viewer that shows no markdown and no folder.

Only the markdown harness.report writes is read: headings (#, ##, ###), tables, image lines
(``![alt](relative.png)``, read from the report folder) and paragraphs with inline `code`.

Owns: turning report.md into report.html. Not: what the report says (harness.report).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")
HEADING = re.compile(r"^(?P<level>#{1,3}) (?P<text>.+)$")
CODE = re.compile(r"`([^`]+)`")
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    header, *rows = [_cells(line) for line in lines if not set(line.strip()) <= {"|", "-", ":"}]
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(alt: str, relative: str, folder: Path) -> str:
    path = folder / relative
    if not path.is_file():
        return f"<p>(plot {html.escape(relative)} missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def to_html(markdown: str, folder: Path) -> str:
    """The page for ``markdown`` (report.md's text), images read from ``folder``."""
    blocks: list[str] = []
    table: list[str] = []
    title = "failover-lab report"
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            blocks.append(_table(table))
            table = []
        if not line.strip():
            continue
        if heading := HEADING.match(line):
            level = len(heading["level"])
            title = heading["text"] if level == 1 else title
            blocks.append(f"<h{level}>{_inline(heading['text'])}</h{level}>")
        elif image := IMAGE.match(line):
            blocks.append(_image(image["alt"], image["path"], folder))
        else:
            blocks.append(f"<p>{_inline(line)}</p>")
    body = "\n".join(blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )

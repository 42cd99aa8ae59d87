"""One report, two renderings: ``report.md`` (GitHub markdown) and ``report.html`` (one self-contained file: the
tables sortable by clicking a header, the plots embedded as data URIs, env.json shown), so that both always hold
the same tables.

A document is a list of blocks: :class:`Heading`, :class:`Text` (inline ``code`` allowed), :class:`Bullets`,
:class:`Table` (a DataFrame; :class:`~kanbench.report.summary.Section` cells are tuples of parts) and
:class:`Image`.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kanbench.report.summary import Section, cell_text


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame | Section
    caption: str = ""


@dataclass
class Image:
    path: Path


Block = Heading | Text | Bullets | Table | Image


def _markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table; the parts of a summary cell (and header lines) are joined by ``<br>``."""
    def cell(value: object, joiner: str) -> str:
        return cell_text(value, joiner).replace("\n", joiner).replace("|", "\\|")

    header = "| " + " | ".join(cell(c, " ") for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v, "<br>") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Text):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if isinstance(block.frame, Section):
                out += [f"**{block.frame.title}**", "", _markdown_table(block.frame.frame), ""]
                out += [f"_{note}_" for note in block.frame.notes] + ([""] if block.frame.notes else [])
            else:
                out += [_markdown_table(block.frame), ""]
        elif isinstance(block, Image):
            out += [f"![{block.path.stem}](plots/{block.path.name})", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escaped text with markdown's `code` and **bold** as HTML."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _html_table(block: Table) -> str:
    frame = block.frame.frame if isinstance(block.frame, Section) else block.frame
    title = block.frame.title if isinstance(block.frame, Section) else block.caption
    head = "".join(f"<th>{html.escape(str(c)).replace(chr(10), '<br>')}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(cell_text(v, chr(10))).replace(chr(10), '<br>')}</td>"
                                     for v in row) + "</tr>" for row in frame.itertuples(index=False))
    caption = f"<caption>{_inline(title)}</caption>" if title else ""
    notes = "".join(f"<p class=note>{_inline(n)}</p>" for n in getattr(block.frame, "notes", []))
    return f"<table class=sortable>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{notes}"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right;vertical-align:top}td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3;
cursor:pointer;user-select:none}th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
caption{text-align:left;font-weight:600;padding:4px 0}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}.note{font-size:12px;color:#555}"""

# Click a header to sort by it (numbers by their leading value, text otherwise); the body's data-ready attribute
# says the page finished: every table made sortable and every image decoded (the browser test reads it).
SCRIPT = """function key(td){const t=td.innerText.trim();const m=t.match(/^[~]?(-?[0-9.]+(e[-+]?[0-9]+)?)/i);
return m?[0,parseFloat(m[1])]:[1,t]}
function sortBy(th){const table=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
dir=th.dataset.dir==='asc'?'desc':'asc';table.querySelectorAll('th').forEach(h=>delete h.dataset.dir);
th.dataset.dir=dir;const body=table.tBodies[0];const rows=[...body.rows].sort((a,b)=>{const x=key(a.cells[i]),
y=key(b.cells[i]);const c=x[0]-y[0]||(x[1]<y[1]?-1:x[1]>y[1]?1:0);return dir==='asc'?c:-c});
rows.forEach(r=>body.appendChild(r))}
window.addEventListener('load',()=>{const tables=document.querySelectorAll('table.sortable');
tables.forEach(t=>t.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortBy(th))));
const imgs=[...document.images];const shown=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.ready=`tables=${tables.length} images=${shown}/${imgs.length}`})"""


def to_html(blocks: list[Block], title: str, plots_dir: Path, env: dict) -> str:
    """The whole report as one HTML file: PNG plots inlined, env.json at the end."""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Image):
            data = base64.b64encode((plots_dir / block.path.name).read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(block.path.stem)}' "
                         f"src='data:image/png;base64,{data}'></figure>")
    parts.append("<h2>env.json</h2><pre>" + html.escape(json.dumps(env, indent=2)) + "</pre>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)

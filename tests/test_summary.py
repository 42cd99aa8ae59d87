"""The closing summary in an 80-column terminal: every identifying field whole, skips grouped by reason; the HTML
report holds every row of report.md's tables and renders in a real headless browser."""

import io
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from test_report import synthetic_run

from kanbench.harness.results import COLUMNS
from kanbench.registry import list_variants
from kanbench.report import make_report, summary

MODES = ("fwd_no_grad", "fwd_bwd", "decode")
LONG_IMPL = "triton_fused"  # the widest impl name kanbench has


def wide_run() -> pd.DataFrame:
    """Every variant in three modes, one impl with a long name, one noisy cell, one mismatch and six skips that
    share one reason: the layout a default run on a CPU produces."""
    rows = []

    def add(variant, impl, mode, stat, value, status="ok", message="", tokens=256, harness="latency",
            metric="latency"):
        rows.append({c: "" for c in COLUMNS} | {
            "variant": variant, "impl": impl, "form": "block", "harness": harness, "mode": mode, "metric": metric,
            "value": value, "stat": stat, "device": "cpu", "dtype": "fp32", "tokens": tokens, "d_model": 128,
            "status": status, "message": message})

    for i, variant in enumerate(list_variants()):
        for mode in MODES:
            tokens = 1 if mode == "decode" else 256
            median = 0.123456 * (i + 1) * (30 if mode == "fwd_bwd" else 1)
            status = "noisy" if (variant, mode) == ("glu", "fwd_bwd") else "ok"
            for stat, factor in (("median", 1.0), ("p20", 0.9), ("p80", 1.2)):
                add(variant, "reference", mode, stat, median * factor, status, tokens=tokens)
            if variant == "grkan":
                if mode == "fwd_bwd":
                    add(variant, LONG_IMPL, mode, "median", "", "mismatch", "max error 3e-2 > allowed 1e-5")
                else:
                    for stat, value in (("median", 0.5), ("p20", 0.45), ("p80", 0.6)):
                        add(variant, LONG_IMPL, mode, stat, value, tokens=tokens)
                for harness in ("latency", "flops"):
                    add(variant, "cuda", mode, "median", "", "skipped", "impl 'cuda' runs on cuda, not cpu", tokens,
                        harness)
    return pd.DataFrame(rows)


def render(df: pd.DataFrame, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    summary.render(summary.accuracy_sections(df) + summary.latency_sections(df), console, summary.not_run_lines(df))
    return console.export_text()


def assert_whole(text: str, df: pd.DataFrame) -> None:
    """Every line within 80 columns; every variant/impl row, mode, token count and median printed whole."""
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    for variant in list_variants():  # each variant/impl row starts with both names, whole
        assert any(re.match(rf"\s*{variant}\s+reference\s", line) for line in lines), variant
    assert any(re.match(rf"\s*grkan\s+{LONG_IMPL}\s", line) for line in lines)
    for mode in MODES:  # each mode is a whole header word, fwd_no_grad and fwd_bwd never cut to the same text
        assert re.search(rf"(^|\s){mode}(\s|$)", text), mode
    for tokens in set(df.tokens):
        assert re.search(rf"(^|\s){tokens} tok(\s|$)", text), tokens
    medians = df[(df.stat == "median") & (df.status == "ok") & (df.value != "")]
    for value in medians.value.astype(float):
        assert re.search(rf"(^|\s){re.escape(f'{value:.3g}')}(\s|$)", text), value


def test_the_summary_keeps_every_identifying_field_whole_at_80_columns():
    df = wide_run()
    text = render(df)
    assert_whole(text, df)
    glu = list_variants().index("glu")
    assert "~" + f"{0.123456 * (glu + 1) * 30:.3g}" in text  # noisy is marked, its number kept
    assert "mismatch" in text
    assert len(text.splitlines()) <= 60


def test_skips_are_one_line_per_reason_naming_every_impl():
    lines = summary.not_run_lines(wide_run())
    skipped = [line for line in lines if line.startswith("skipped")]
    assert len(skipped) == 1
    assert "grkan/cuda" in skipped[0] and "latency, flops" in skipped[0] and "runs on cuda, not cpu" in skipped[0]
    assert any(line.startswith("mismatch: grkan/triton_fused") for line in lines)


def test_a_table_too_wide_is_split_by_columns_never_squeezed():
    df = wide_run()
    parts = []
    for tokens in (256, 1024, 4096):  # each token count its own numbers, so a cropped column cannot hide
        part = df.assign(tokens=df.tokens.where(df["mode"] == "decode", tokens))
        scaled = (part["mode"] != "decode") & (part.value != "")
        part.loc[scaled, "value"] = part.loc[scaled, "value"].astype(float) * tokens / 256
        parts.append(part)
    df = pd.concat(parts)
    text = render(df)
    assert_whole(text, df)
    assert "(1/" in text


class Tables(HTMLParser):
    """Cell texts of every <table>'s body rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.tables[-1].append([])
        elif tag == "td":
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append("<br>")

    def handle_endtag(self, tag):
        if tag == "td":
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data.replace("\n", "<br>"))


def markdown_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = []
                tables.append(current)
            if set(line) <= set("|-"):
                continue
            current.append(cells)
        else:
            current = None
    return [t[1:] for t in tables]  # body rows: the header row dropped


def test_report_html_holds_every_row_of_report_md(tmp_path):
    run = synthetic_run(tmp_path / "run")
    report = make_report(run, plots=False)
    parser = Tables()
    parser.feed((run / "report.html").read_text())
    md = markdown_tables(report.read_text())
    assert len(md) == len(parser.tables) >= 6
    for md_rows, html_rows in zip(md, parser.tables, strict=True):
        assert md_rows == html_rows


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="no headless browser here (Debian: apt-get install chromium); "
                                                 ".ci/run installs it where it can")
def test_report_html_renders_in_a_headless_browser(tmp_path):
    run = synthetic_run(tmp_path / "run")
    make_report(run)
    html = (run / "report.html").read_text()
    images = html.count("<img ")
    assert images >= 5 and "data:image/png;base64," in html  # self-contained: no file beside it is needed
    page = tmp_path / "moved.html"
    page.write_text(html)  # away from plots/: what it shows must come from the file alone
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120).stdout
    tables = html.count("<table class=sortable>")
    assert f'data-ready="tables={tables} images={images}/{images}"' in dom, dom[-500:]


def test_the_report_names_itself_in_the_terminal(tmp_path, capsys):
    from kanbench.cli import main

    run = synthetic_run(tmp_path / "run")
    assert main(["report", str(run), "--no-plots"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert Path(run / "report.html").stat().st_size > 1000

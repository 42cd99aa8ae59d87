"""Plots a reader can read values off: log axes labelled in plain numbers wherever they span, speed-up bars that
start at 1 (a bar on a log axis that starts at the axis's edge is as long as that edge makes it), latency and
memory as dots at the medians."""

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_report import synthetic_run

from kanbench.report import axes, plots


@pytest.mark.parametrize("low, high", [(1.8, 5.0), (0.45, 1.6), (0.09, 0.31), (1.02, 7.9), (0.001, 500.0),
                                       (3e-4, 2e2), (0.3, 1.05), (1.0, 1.5), (120.0, 20000.0)])
def test_log_ticks_are_at_least_two_inside_the_view_and_never_crowd(low, high):
    ticks = axes.nice_log_ticks(low, high)
    assert ticks is not None and len(ticks) >= 2
    assert all(low <= t <= high for t in ticks)
    gaps = np.diff(np.log10(ticks))
    assert gaps.min() >= math.log10(high / low) / axes.MOST_LOG_TICKS - 1e-12
    assert all(len(f"{t:g}") <= 6 for t in ticks)  # 0.3, not 0.30000000000000004


def test_the_finest_ticks_that_do_not_crowd_are_chosen():
    assert axes.nice_log_ticks(1.8, 5.0) == [2.0, 2.5, 3.0, 4.0, 5.0]  # decades alone: no label in this panel
    assert axes.nice_log_ticks(1.6, 5.3) == [2.0, 3.0, 5.0]  # 1.5 and 7 outside it, 2.5 too close to 3 for it
    assert axes.nice_log_ticks(0.001, 500.0) == [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    assert axes.nice_log_ticks(1e-3, 1e8) is None  # over six decades: matplotlib thins the decades


@pytest.mark.parametrize("low, high", [(1.8, 5.0), (0.95, 1.01), (1.25, 1.9), (1e-3, 1e8)])
def test_every_log_axis_gets_labels_inside_its_view(low, high):
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    axes.readable_log_ticks(ax.xaxis)
    fig.canvas.draw()
    labelled = [t for t in ax.xaxis.get_major_ticks() if t.label1.get_text() and low <= t.get_loc() <= high]
    plt.close(fig)
    assert len(labelled) >= 2


@pytest.fixture
def drawn(monkeypatch):
    """The figures a plot function draws, kept open instead of saved."""
    figures = {}
    monkeypatch.setattr(plots, "save", lambda fig, figs, name, tight=True: figures.setdefault(name, fig) and [])
    yield figures
    plt.close("all")


def _samples(run):
    return pd.read_csv(run / "samples.csv", keep_default_na=False)


def test_speedup_bars_start_at_one_and_end_at_the_speedup(tmp_path, drawn):
    run = synthetic_run(tmp_path / "run")  # variants before mlp in the registry are faster, those after slower
    figs = plots.Figures(run / "plots", plots.palette([]), "synthetic")
    plots.speedup_bars(_samples(run), figs)
    ax = drawn["speedup_vs_baseline"].axes[0]
    ends = {}
    for bar, label in zip(ax.patches, [t.get_text() for t in ax.get_yticklabels()], strict=True):
        x0, x1 = sorted((bar.get_x(), bar.get_x() + bar.get_width()))
        assert 1.0 in (pytest.approx(x0), pytest.approx(x1)), label
        ends[label] = x1 if x0 == pytest.approx(1.0) else x0
    assert ends["af_kan/reference"] == pytest.approx(7.0) and ends["wav_kan/reference"] == pytest.approx(0.7)


def test_latency_dots_sit_at_the_medians_of_the_samples(tmp_path, drawn):
    run = synthetic_run(tmp_path / "run")
    samples = _samples(run)
    figs = plots.Figures(run / "plots", plots.palette([]), "synthetic")
    plots.latency_dots(samples, figs)
    ax = drawn["latency_by_variant"].axes[0]
    mode, dtype, tokens, d_model = plots._largest_shape_panels(samples)[0]
    part = samples[(samples["mode"] == mode) & (samples.tokens == tokens)]
    medians = part.groupby(part.variant + "/" + part.impl).ms.median()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    xs = ax.collections[-1].get_offsets()[:, 0]  # the dots, drawn after the p20-p80 lines
    assert dict(zip(labels, xs, strict=True)) == pytest.approx(medians.to_dict())
    assert list(xs) == sorted(xs)  # fastest on top


def test_a_plot_the_report_no_longer_draws_is_removed_and_a_foreign_file_stays(tmp_path):
    run = synthetic_run(tmp_path / "run")
    (run / "plots").mkdir()
    for name in ("memory.png", "memory.svg", "mine.png"):
        (run / "plots" / name).write_bytes(b"an earlier report's plot")
    df = pd.read_csv(run / "results.csv", keep_default_na=False)
    df[df.harness != "memory"].to_csv(run / "results.csv", index=False)  # no memory rows now: no memory plot
    written = plots.write_plots(run)
    assert not (run / "plots" / "memory.png").exists() and not (run / "plots" / "memory.svg").exists()
    assert (run / "plots" / "mine.png").exists()
    assert {p.name for p in written} == {p.name for p in (run / "plots").iterdir()} - {"mine.png"}


def test_every_figure_is_signed_with_the_versions_and_commit_behind_it(tmp_path):
    """A figure quoted alone (a slide, a paper) still names its software: the footer under everything drawn."""
    env = {"git_commit": "0123456789abcdef", "torch": "2.11.0+cu130", "triton": "3.6.0", "cuda": "13.0",
           "driver": "580.1", "time_utc": "2026-11-22T10:00:00Z"}
    sign = plots.footer(env)
    assert sign == "kanbench 0123456789ab · torch 2.11.0+cu130 · triton 3.6.0 · CUDA 13.0, driver 580.1 · 2026-11-22"
    assert plots.footer({"torch": "2.13.0+cpu"}) == "kanbench ? · torch 2.13.0+cpu · triton -"
    run = synthetic_run(tmp_path / "run")
    (run / "env.json").write_text(json.dumps({"device": "cpu", "cpu": "synthetic", **env}))
    written = plots.write_plots(run)
    svgs = [p for p in written if p.suffix == ".svg"]
    assert len(svgs) == len(plots.PLOT_NAMES)
    for svg in svgs:
        assert sign in svg.read_text(), svg.name


def test_large_counts_on_a_linear_axis_share_one_unit():
    thousands = axes.in_units_of(110_000)
    assert [thousands(v, None) for v in (0, 5_000, 95_000, 110_200)] == ["0", "5k", "95k", "110.2k"]
    assert axes.in_units_of(2.5e6)(1.25e6, None) == "1.25M"
    assert axes.in_units_of(9_999)(9_500, None) == "9500"  # under 10^4 the number itself is short enough


def test_a_regenerated_report_writes_the_same_files(tmp_path):
    """No date or random id in the SVGs: regenerating a published set's report shows only what really changed."""
    run = synthetic_run(tmp_path / "run")
    first = {p.name: p.read_bytes() for p in plots.write_plots(run)}
    again = {p.name: p.read_bytes() for p in plots.write_plots(run)}
    assert first == again

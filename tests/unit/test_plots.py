"""The plots, drawn from synthetic results (no lab): asserted on matplotlib's artists, not pixels."""

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import Collection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from harness import phases, plots, policy, report, result, timers

from .outcomes import synthetic_outcome

Result = dict[str, Any]
SCALED = timers.profile("win2000").scaled(1 / 30)


def scaled_crash() -> Result:
    return result.to_json(synthetic_outcome(11.8, SCALED))


def with_every_event(record: Result) -> Result:
    """``record`` with one log event of every kind and every kind of SA event inside its window."""
    return dict(
        record,
        log_events=[{"t_s": 0.1 * i, "kind": kind, "text": kind} for i, kind in enumerate(plots.LOG_MARKS)],
        events=[
            {"t_s": 0.05 * i, "sa": sa, "up": up, "ike_id": "1", "remote": "198.18.0.100"}
            for i, (sa, up) in enumerate(plots.SA_MARKS)
        ],
    )


def timeline_legend(figure: Figure) -> dict[str, Any]:
    (legend,) = figure.legends
    return {
        str(text.get_text()): handle for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }


def main_axes(figure: Figure) -> Axes:
    return figure.axes[0]


def scatters(axes: Axes, label: str) -> list[PathCollection]:
    return [c for c in axes.collections if isinstance(c, PathCollection) and c.get_label() == label]


def xs(collection: Collection) -> list[float]:
    """The x of every point of a scatter."""
    return [float(x) for x in np.asarray(collection.get_offsets())[:, 0]]


def test_every_log_event_kind_has_its_own_marker() -> None:
    assert set(plots.LOG_MARKS) == set(phases.LOG_EVENTS)
    markers = [mark.marker for mark in plots.LOG_MARKS.values()]
    assert len(set(markers)) == len(markers)
    glyphs = {(m.marker, m.colour, m.filled) for m in [*plots.LOG_MARKS.values(), *plots.SA_MARKS.values()]}
    assert len(glyphs) == len(plots.LOG_MARKS) + len(plots.SA_MARKS)


def test_timeline_legend_names_each_event_kind_drawn() -> None:
    figure = plots.timeline_figure(with_every_event(result.to_json(synthetic_outcome(4.8))))
    legend = timeline_legend(figure)
    for mark in [*plots.LOG_MARKS.values(), *plots.SA_MARKS.values()]:
        assert mark.label in legend
        assert legend[mark.label].get_marker() == mark.marker
    axes = main_axes(figure)
    drawn = {str(c.get_label()) for c in axes.collections if not str(c.get_label()).startswith("_")}
    assert drawn <= set(legend)


def test_timeline_legend_holds_only_the_kinds_present() -> None:
    record = result.to_json(synthetic_outcome(4.8))  # one gave-up, IKE SA down, CHILD SA up
    legend = timeline_legend(plots.timeline_figure(record))
    assert {"gave up retransmitting", "IKE SA down (vici)", "CHILD SA up (vici)"} <= set(legend)
    absent = [plots.LOG_MARKS[k].label for k in plots.LOG_MARKS if k != "gave-up"]
    absent += [plots.SA_MARKS["ike", True].label, plots.SA_MARKS["child", False].label]
    assert not set(absent) & set(legend)
    assert "answer from be1 (where it arrived)" in legend and "answer from be2 (where it arrived)" in legend
    assert "failed attempt (where it started)" not in legend  # the synthetic probes never failed
    assert "phase: detection (by DPD)" in legend


def test_timeline_title_shows_the_scale_as_a_fraction_and_the_table_numbers() -> None:
    record = scaled_crash()
    figure = plots.timeline_figure(record)
    title = main_axes(figure).get_title()
    row = dict(zip(report.KB_COLUMNS, report.kb_rows([record])[0], strict=True))
    assert row["scale"] == "1/30"
    assert "TIME-SCALED 1/30" in title and "0.0333" not in title
    assert f"outage {row['measured (actual)']} s actual = {row['measured (unscaled)']} s unscaled" in title
    assert f"predicted {row['predicted (actual)']} s actual = {row['predicted (unscaled)']} s unscaled" in title
    assert f"KB 821839: {row['KB 821839']} s" in title
    assert "policy" not in title  # all-traffic is the default design


def test_a_real_time_run_says_so() -> None:
    title = main_axes(plots.timeline_figure(result.to_json(synthetic_outcome(4.8)))).get_title()
    assert "real time (scale 1)" in title and "TIME-SCALED" not in title and "unscaled" not in title


def test_policy_runs_name_the_policy_and_each_service_says_if_it_was_protected() -> None:
    record = result.to_json(synthetic_outcome(5.0, design="mail-passwords"))
    axes = main_axes(plots.timeline_figure(record))
    assert "policy mail-passwords" in axes.get_title()
    labels = [tick.get_text() for tick in axes.get_yticklabels()]
    assert {"udp (clear)", "http (clear)", "pop3 (IPsec)", "imap (IPsec)"} <= set(labels)


def test_each_service_has_the_predicted_band_of_the_json_from_its_last_answer() -> None:
    record = result.to_json(synthetic_outcome(5.0, design="mail-passwords"))
    axes = main_axes(plots.timeline_figure(record))
    bands = {str(p.get_gid()): p for p in axes.patches if isinstance(p, Rectangle)}
    for name, service in record["services"].items():
        band = bands[f"predicted:{name}"]
        start = service["last_answer_before_s"]
        assert band.get_x() == pytest.approx(start + service["predicted"]["lo_s"])
        assert band.get_width() == pytest.approx(service["predicted"]["hi_s"] - service["predicted"]["lo_s"])
    overall = bands["predicted:overall"]
    assert overall.get_x() == pytest.approx(record["phases"]["start_s"] + record["predicted"]["lo_s"])
    side = axes.child_axes[0]
    texts = [tick.get_text() for tick in side.get_yticklabels()]
    pop3 = record["services"]["pop3"]
    assert f"{pop3['outage_s']:.3f} s, predicted {pop3['predicted']['lo_s']:.2f}-{pop3['predicted']['hi_s']:.2f}" in (
        " ".join(texts)
    )


def test_attempts_are_drawn_as_the_json_holds_them() -> None:
    record = result.to_json(synthetic_outcome(4.8))
    record["attempts"]["udp"] += [[0.5, 1.5, None], [0.6, None, None]]  # a timeout; one without an end
    axes = main_axes(plots.timeline_figure(record))
    (failed,) = scatters(axes, "failed attempt (where it started)")
    assert xs(failed) == [0.5]
    (endless,) = scatters(axes, "attempt without an end in the JSON (where it started)")
    assert xs(endless) == [0.6]
    answers = sum(len(xs(c)) for c in axes.collections if "answer from" in str(c.get_label()))
    assert answers == sum(1 for attempts in record["attempts"].values() for a in attempts if a[2] is not None)


def comparison_runs() -> list[Result]:
    return [
        result.to_json(synthetic_outcome(0.16, SCALED, fault="graceful")),
        scaled_crash(),
        result.to_json(synthetic_outcome(1.0, fault="graceful")),
        result.to_json(synthetic_outcome(4.8)),
    ]


def test_comparison_draws_the_kb_figure_as_a_range() -> None:
    axes = main_axes(plots.comparison_figure(comparison_runs()))
    kb = {
        str(line.get_gid()): np.asarray(line.get_ydata()).tolist()
        for line in axes.lines
        if str(line.get_gid()).startswith("kb:")
    }
    assert kb == {
        "kb:win2000:1/30:all-traffic:graceful": [3.0, 6.0],
        "kb:win2000:1/30:all-traffic:crash": [360.0, 360.0],
    }
    labels = [text.get_text() for text in axes.texts]
    assert "KB 3-6 s" in labels and "KB 360 s" in labels


def test_comparison_tells_time_scaled_bars_from_real_time_ones() -> None:
    runs = comparison_runs()
    axes = main_axes(plots.comparison_figure(runs))
    bars = {
        str(p.get_gid()): p for p in axes.patches if isinstance(p, Rectangle) and str(p.get_gid()).startswith("bar:")
    }
    assert bars["bar:win2000:1/30:all-traffic:crash"].get_hatch() == "///"
    assert bars["bar:fast:1:all-traffic:crash"].get_hatch() is None
    assert bars["bar:win2000:1/30:all-traffic:crash"].get_height() == pytest.approx(runs[1]["outage_unscaled_s"])
    legend = axes.get_legend()
    assert legend is not None
    entries = [text.get_text() for text in legend.get_texts()]
    assert entries == [
        "graceful",
        "crash",
        "time-scaled run: hatched, pale (actual / scale)",
        "real-time run: solid",
        "predicted band (lo-hi)",
        "KB 821839 figure (lo-hi)",
    ]
    ticks = [tick.get_text() for tick in axes.get_xticklabels()]
    assert ticks == ["win2000\ntime-scaled 1/30", "fast\nreal time"]
    box = next(p for p in axes.patches if p.get_gid() == "predicted:win2000:1/30:all-traffic:crash")
    assert isinstance(box, Rectangle)
    lo, hi = runs[1]["predicted"]["lo_unscaled_s"], runs[1]["predicted"]["hi_unscaled_s"]
    assert (box.get_y(), box.get_y() + box.get_height()) == pytest.approx((lo, hi))


def test_comparison_without_kb_figures_or_scaled_runs_leaves_them_out_of_the_legend() -> None:
    runs = [result.to_json(synthetic_outcome(4.8, design=design)) for design in ("all-traffic", "mail-passwords")]
    axes = main_axes(plots.comparison_figure(runs))
    legend = axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [
        "crash",
        "real-time run: solid",
        "predicted band (lo-hi)",
    ]
    assert not [line for line in axes.lines if isinstance(line, Line2D) and str(line.get_gid()).startswith("kb:")]
    ticks = [tick.get_text() for tick in axes.get_xticklabels()]
    assert ticks == ["fast\nreal time\npolicy all-traffic", "fast\nreal time\npolicy mail-passwords"]


def test_scale_as_a_fraction() -> None:
    assert [timers.scale_text(s) for s in (1 / 30, 1.0, 0.25, 0.4, 30.0)] == ["1/30", "1", "1/4", "0.4", "30"]


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    plots.timeline(with_every_event(scaled_crash()), tmp_path / "timeline.png")
    plots.comparison(comparison_runs(), tmp_path / "comparison.png")
    for name in ("timeline.png", "comparison.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def overlapping_ticks(figure: Figure) -> list[tuple[str, str]]:
    """Pairs of neighbouring tick labels of the comparison whose drawn boxes overlap."""
    figure.draw_without_rendering()
    labels = main_axes(figure).get_xticklabels()
    boxes = [(label.get_text(), label.get_window_extent()) for label in labels]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.pairwise(boxes) if box_a.overlaps(box_b)]


def many_columns(count: int, faults: Sequence[str] = ("crash",)) -> list[Result]:
    """``count`` profiles x policies (one column each) of made-up profiles with long names."""
    runs = []
    for index in range(count):
        profile = timers.Profile(
            f"cautious-profile-{index:02d}", "", dpd_delay=2, retransmit_timeout=1.0, retransmit_base=1.0
        )
        design = list(policy.POLICIES)[index % len(policy.POLICIES)]
        runs += [result.to_json(synthetic_outcome(4.8, profile, fault=fault, design=design)) for fault in faults]
    return runs


@pytest.mark.parametrize(
    ("runs", "rotation"),
    [
        (comparison_runs(), 0),  # the demo's: two profiles, two faults
        (many_columns(8, ("graceful", "crash", "freeze")), 0),
        (many_columns(16), 90),  # one fault per column left no room for the labels: they overlapped
        (many_columns(40), 90),
    ],
    ids=["demo", "8x3", "16x1", "40x1"],
)
def test_comparison_tick_labels_never_overlap(runs: list[Result], rotation: float) -> None:
    figure = plots.comparison_figure(runs)
    assert overlapping_ticks(figure) == []
    assert {label.get_rotation() for label in main_axes(figure).get_xticklabels()} == {rotation}
    columns, faults = len({(r["profile"], r["policy"]) for r in runs}), len({r["fault"] for r in runs})
    needed_by_the_bars = plots.FAULT_IN * faults * columns + plots.MARGIN_IN
    assert figure.get_figwidth() <= max(plots.MAX_WIDTH_IN, needed_by_the_bars)  # labels never widen it further

"""report.html: self-contained, copes with 0 and many frames, written atomically."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import OutputError
from edge_bus.sinks.framelog import FrameLog
from edge_bus.sinks.report import ReportData, VerdictBadge, render_report, write_report
from edge_bus.telemetry.chart_series import ChartSeries
from edge_bus.telemetry.series import FrameSeries, SeriesBuilder
from edge_bus.telemetry.stats import StageMetrics
from edge_bus.types import Frame, FrameRecord, Prediction, StageTimes

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|<script|<link|@import|url\(""", re.IGNORECASE)
LABELS = ("normal", "benign", "malignant")


def synthetic_series(n: int, seed: int = 0) -> tuple[FrameSeries, StageMetrics]:
    rng = np.random.default_rng(seed)
    stages = {"preprocess": rng.gamma(2, 0.5, n), "infer": 8 + rng.gamma(3, 1, n), "render": rng.gamma(2, 0.3, n)}
    e2e = np.sum(list(stages.values()), axis=0) + 0.5
    labels = tuple(LABELS[(i // 97) % 3] for i in range(n))
    series = FrameSeries(
        frame=np.arange(n), e2e_ms=e2e, stages_ms=stages, label=labels,
        malignancy=rng.random(n), lesion=np.array([lb != "normal" for lb in labels], bool),
        glass_to_glass_ms=e2e + 30,
    )  # fmt: skip
    metrics = StageMetrics(list(stages))
    for name, values in stages.items():
        metrics[name].extend(values)
    metrics["end_to_end"].extend(e2e)
    metrics["glass_to_glass"].extend(e2e + 30)
    return series, metrics


def report_data(n: int) -> ReportData:
    series, metrics = synthetic_series(n)
    return ReportData(
        title="run <clip & co>", summary={"model": "tiny", "frames": n, "fps": 31.25, "dropped": 0},
        latency=metrics.summary(), hardware={"cpu_model": "Test CPU", "isa": {"avx2": True, "amx_int8": False}},
        series=ChartSeries.from_frames(series), verdict=VerdictBadge("benign", 0.71), malignancy_threshold=0.4,
        notes=["a note"],
    )  # fmt: skip


def test_zero_frames(tmp_path: Path) -> None:
    data = ReportData(title="empty", summary={"frames": 0}, latency=StageMetrics().summary(), hardware={})
    html = write_report(tmp_path / "report.html", data).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "no frames processed" in html and "<svg" not in html


def test_5000_frames_is_self_contained_with_all_plots(tmp_path: Path) -> None:
    path = write_report(tmp_path / "out" / "report.html", report_data(5000))
    html = path.read_text(encoding="utf-8")
    assert EXTERNAL.search(html) is None, "the report must not load anything from elsewhere"
    titles = re.findall(r"<svg[^>]*aria-label=\"([^\"]+)\"", html)
    assert titles == [
        "End-to-end latency histogram",
        "Mean latency per stage",
        "Per-frame latency timeline",
        "Class timeline and malignancy probability",
    ]
    assert "run &lt;clip &amp; co&gt;" in html and "<clip" not in html  # escaped
    assert "BENIGN" in html and "Test CPU" in html and "amx_int8" in html
    assert path.stat().st_size < 2_000_000
    assert [p.name for p in path.parent.iterdir()] == ["report.html"], "no temporary files left"


def test_100k_frames_stays_small() -> None:
    html = render_report(report_data(100_000))
    assert len(html.encode()) < 2_000_000
    assert "100,000 frames shown as 1,200 buckets" in html


def test_unwritable_target_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        write_report(blocker / "report.html", report_data(10))


def _record(i: int, stages: dict[str, float]) -> FrameRecord:
    frame = Frame(index=i, pixels=np.zeros((2, 2), np.uint8), t_source=0.0, t_capture=0.0, wall_time=0.0)
    pred = Prediction(
        mask=np.zeros((2, 2), bool), probs={"malignant": 0.9}, malignancy=0.9, lesion=True, label="malignant",
        bbox=(0, 0, 1, 1), mask_area=0.25,
    )  # fmt: skip
    return FrameRecord(frame, pred, StageTimes(stages, e2e_ms=10.0 + i))


def test_series_from_jsonl_skips_a_torn_last_line_and_pads_missing_stages(tmp_path: Path) -> None:
    path = tmp_path / "frames.jsonl"
    with FrameLog(path) as log:
        log.write(_record(0, {"infer": 5.0}))
        log.write(_record(1, {"infer": 6.0, "render": 1.0}))
        log.write(_record(2, {"render": 2.0}))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"frame": 3, "e2e_ms": 1')  # what a crash mid-line would leave
    series = FrameSeries.from_jsonl(path)
    assert series.frame.tolist() == [0, 1, 2] and series.e2e_ms.tolist() == [10.0, 11.0, 12.0]
    assert series.stages_ms["infer"][:2].tolist() == [5.0, 6.0] and math.isnan(series.stages_ms["infer"][2])
    assert math.isnan(series.stages_ms["render"][0]) and series.stages_ms["render"][1:].tolist() == [1.0, 2.0]
    assert series.glass_to_glass_ms is None and series.label == ("malignant",) * 3
    from_records = FrameSeries.from_records(_record(i, {"infer": 1.0}) for i in range(4))
    assert len(from_records) == 4


def test_series_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="e2e_ms"):
        FrameSeries(np.arange(3), np.zeros(2), {}, ("a",) * 3, np.zeros(3), np.zeros(3, bool))
    assert len(SeriesBuilder().build()) == 0


def test_timeline_stacks_only_the_stages_inside_end_to_end() -> None:
    """A file's decode happens before its capture stamp and the write after the overlay: stacking them
    under the end-to-end line drew a stack taller than the line it explains."""
    from dataclasses import replace

    from edge_bus.run_report import e2e_stages
    from edge_bus.sources.base import SourceInfo

    def timeline(html: str) -> str:
        return re.search(r'<svg[^>]*aria-label="Per-frame latency timeline".*?</svg>', html, re.S).group(0)  # type: ignore[union-attr]

    data = report_data(200)
    everything = render_report(data)
    assert ">preprocess</text>" in timeline(everything) and "not stacked" not in everything
    inside = render_report(replace(data, e2e_stages=("infer", "render")))
    assert ">preprocess</text>" not in timeline(inside) and ">infer</text>" in timeline(inside)
    assert "(preprocess: outside the capture → overlay-ready window, so not stacked)" in inside
    video = SourceInfo("video", "clip.avi", 64, 64, 30.0, 10)
    assert e2e_stages(video) == ("preprocess", "infer", "postprocess", "render")
    grabbed = replace(video, kind="app", live=True, stamped_before_decode=True)  # an app's grabber too
    assert e2e_stages(grabbed)[0] == "decode"  # grabbed, then decoded: inside


def test_frozen_frames_read_back_and_stay_out_of_the_clip_verdict(tmp_path: Path) -> None:
    """Frames shown while the device is frozen repeat an earlier answer: one malignant answer and
    nine frozen repeats of it is one answered frame, not ten malignant ones."""
    from dataclasses import replace

    from edge_bus.summary import clip_verdict

    path = tmp_path / "frames.jsonl"
    benign = replace(_record(0, {"infer": 5.0}).prediction, malignancy=0.1, label="benign")
    with FrameLog(path) as log:
        for i in range(10):
            r = _record(i, {"infer": 5.0})
            log.write(replace(r, prediction=benign) if i < 9 else r)  # 9 answered benign, 1 malignant
        for i in range(10, 20):
            r = _record(i, {"render": 1.0})
            log.write(replace(r, prediction=replace(r.prediction, frozen=True)))  # ...frozen on it
    series = FrameSeries.from_jsonl(path)
    assert series.frozen is not None and series.frozen.tolist() == [False] * 10 + [True] * 10
    verdict = clip_verdict(series, threshold=0.5)
    assert (verdict.label, verdict.frames, verdict.lesion_frames) == ("benign", 10, 10)
    assert verdict.mean_malignancy == pytest.approx((9 * 0.1 + 0.9) / 10)
    assert FrameSeries.from_records([_record(0, {})]).frozen is None  # no freeze: no column


def test_malignancy_is_plotted_only_where_there_is_a_lesion() -> None:
    """The chart read "P(malignant)" and drew P(malignant | lesion) on normal frames too: 62 frames
    labelled normal sat above the malignancy threshold line of one cine clip."""
    from dataclasses import replace

    n = 40
    lesion = np.arange(n) < 20  # 20 lesion frames, then 20 normal frames with a high conditional malignancy
    series = FrameSeries(np.arange(n), np.full(n, 10.0), {}, tuple("malignant" if x else "normal" for x in lesion),
                         np.full(n, 0.95), lesion)
    data = replace(report_data(n), series=ChartSeries.from_frames(series), lesion_threshold=0.98324)
    html = render_report(data)
    assert "P(malignant | lesion)" in html and "(P(lesion) ≥ 0.9832)" in html and "threshold 0.4000" in html
    from edge_bus.zoo import LesionThresholdEvidence

    found = render_report(replace(data, lesion_evidence=LesionThresholdEvidence("BUSI fold 1", 0.8062, 0.0)))
    assert ("(P(lesion) ≥ 0.9832; on BUSI fold 1 it found a lesion in 80.6% of the lesion images and flagged 0.0% "
            "of the normal ones, so a frame called normal may still show one)") in found
    svg = html[html.index("Class timeline"):]
    drawn = re.search(r'<path d="(M[^"]*)" fill="none" stroke="[^"]+" stroke-width="1.4"', svg)
    assert drawn is not None
    xs = [float(p.split(",")[0]) for p in re.findall(r"[\d.]+,[\d.]+", drawn.group(1))]
    assert len(xs) == 20  # the line stops where the lesion frames end


def test_lesion_episodes_are_bracketed_on_the_class_timeline_and_listed() -> None:
    """Two episodes at 30 fps: each gets a numbered bracket under the class band, spanning its
    frames, and a row with its frames, seconds, lesion frames, mean malignancy and label."""
    from dataclasses import replace

    from edge_bus.summary import LesionEpisode

    episodes = (LesionEpisode(30, 89, 55, 0.123, "benign"), LesionEpisode(300, 359, 60, 0.91, "malignant"))
    html = render_report(replace(report_data(600), episodes=episodes, fps=30.0))
    svg = html[html.index("Class timeline"):]
    brackets = re.findall(r'<path d="M([\d.]+),\d+ V\d+ H([\d.]+) V\d+" fill="none" stroke="[^"]+" '
                          r'stroke-width="1.6"/>', svg)
    assert len(brackets) == 2 and float(brackets[0][1]) < float(brackets[1][0])  # in order, apart
    table = html[html.index("<th>episode</th>"):]
    assert "<td>30–89</td><td>1.0–3.0</td><td>55</td><td>0.12</td>" in table
    assert "<td>300–359</td><td>10.0–12.0</td><td>60</td><td>0.91</td>" in table and ">malignant</td>" in table
    assert "<th>episode</th>" not in render_report(report_data(600))  # none: no table
    # a source without a frame rate (a DICOM cine without FrameTime): episodes were found at an assumed
    # 30 fps and listed with seconds at that rate, against frames.jsonl's t_source of 1 s a frame
    unknown = render_report(replace(report_data(600), episodes=episodes, fps=0.0))
    assert "<td>30–89</td><td>—</td>" in unknown and "counted at an assumed 30 fps, and not shown" in unknown


def test_dropped_frames_are_marked_on_the_latency_timeline(tmp_path: Path) -> None:
    """Drops were only a number in the summary: a live run's 12 drops, all inside one latency spike,
    could not be seen against it."""
    from dataclasses import replace

    path = tmp_path / "frames.jsonl"
    with FrameLog(path) as log:
        for i in range(30):
            r = _record(i, {"infer": 5.0})
            log.write(replace(r, frame=replace(r.frame, dropped_before=3 if i in (10, 11, 20) else 0)))
    series = FrameSeries.from_jsonl(path)
    assert series.dropped_before is not None and int(series.dropped_before.sum()) == 9
    html = render_report(replace(report_data(30), series=ChartSeries.from_frames(series)))
    assert "dropped frames (9)" in html and "Red ticks: frames were dropped just before" in html
    assert html.count("v-9") == 3  # one tick under each frame that had drops before it
    assert "dropped frames" not in render_report(report_data(30))  # no drops, no mark


def test_the_histogram_leaves_frozen_frames_out_like_the_table() -> None:
    """The histogram counted frozen frames (shown again without inference) while the latency table
    left them out: p50 15.0 against 25.5 ms in one report."""
    from dataclasses import replace

    n = 20
    frozen = np.arange(n) >= 10
    series = FrameSeries(np.arange(n), np.where(frozen, 1.0, 30.0), {}, ("benign",) * n, np.full(n, 0.2),
                         np.ones(n, bool), frozen=frozen)
    html = render_report(replace(report_data(n), series=ChartSeries.from_frames(series)))
    assert "frozen ones are left out, as in the table" in html
    assert "p50 30 ms" in html and "p50 1 ms" not in html  # the histogram's own summary line


def test_frozen_frames_are_their_own_grey_class_on_the_timelines() -> None:
    """The class band drew 10 frozen repeats of one benign answer as 10 benign frames (legend 'benign
    (75.0%)' where the verdict counted 5 of 10 answered frames), and the malignancy and end-to-end lines
    ran through them."""
    from dataclasses import replace

    n = 20
    frozen = np.arange(n) >= 10
    labels = ("normal",) * 5 + ("benign",) * 15
    series = FrameSeries(np.arange(n), np.where(frozen, 1.0, 30.0), {}, labels, np.full(n, 0.2),
                         np.arange(n) >= 5, frozen=frozen)
    html = render_report(replace(report_data(n), series=ChartSeries.from_frames(series)))
    svg = html[html.index("Class timeline"):]
    assert "normal (25.0%)" in svg and "benign (25.0%)" in svg and "frozen (50.0%)" in svg
    assert "grey: frames shown while the board froze the image" in html
    drawn = re.search(r'<path d="(M[^"]*)" fill="none" stroke="[^"]+" stroke-width="1.4"', svg)
    assert drawn is not None
    assert len(re.findall(r"[\d.]+,[\d.]+", drawn.group(1))) == 5  # malignancy on answered lesion frames 5-9 only
    unfrozen = render_report(replace(report_data(n), series=ChartSeries.from_frames(replace(series, frozen=None))))
    assert "frozen (" not in unfrozen and "benign (75.0%)" in unfrozen


def test_the_headline_tiles_show_the_runs_frames_per_second() -> None:
    from dataclasses import replace

    data = replace(report_data(30), summary={"fps": 257.4})
    html = render_report(data)
    assert "frames per second" in html and ">257<" in html.replace('<span class="u"></span>', "")
    assert "frames per second" not in render_report(replace(report_data(30), summary={"fps": None}))


def test_tables_name_keys_for_people_and_leave_written_names_alone() -> None:
    from edge_bus.sinks.report import display_name, kv_table

    assert display_name("cpu_model") == "CPU model" and display_name("ram_gb") == "RAM (GB)"
    assert display_name("validation_frames") == "Validation frames"
    assert display_name("benchmark_app FPS (same IR, batch 1)") == "benchmark_app FPS (same IR, batch 1)"
    assert display_name("pipeline FPS") == "Pipeline FPS"
    assert kv_table({}) == '<p class="muted">none</p>'
    assert "<th>OpenVINO</th><td>2026.4.1</td>" in kv_table({"openvino": "2026.4.1"})


def test_no_chart_path_holds_a_nan_and_bands_with_gaps_are_drawn_in_pieces() -> None:
    """A long run's malignancy band went into its path as 'M58.2,nanL58.9,nan…' wherever a bucket had no
    lesion frame, and a browser stops drawing a path at the first bad value: the band the legend promises
    ('mean, min–max band') was not drawn at all. Frozen stretches did the same to the end-to-end band."""
    from dataclasses import replace

    n = 6000
    lesion = (np.arange(n) // 500) % 2 == 0  # lesion stretches and lesion-free ones
    frozen = (np.arange(n) // 700) % 3 == 2
    series = FrameSeries(np.arange(n), np.full(n, 8.0), {"infer": np.full(n, 5.0)},
                         tuple("benign" if x else "normal" for x in lesion), np.linspace(0, 1, n), lesion,
                         frozen=frozen)
    html = render_report(replace(report_data(n), series=ChartSeries.from_frames(series)))
    assert re.search(r'd="[^"]*nan', html, re.IGNORECASE) is None
    bands = re.findall(r'<path d="([^"]*)" fill="[^"]+" fill-opacity="0.1[58]"', html)
    assert len(bands) == 2 and all(b.count("M") > 1 for b in bands)  # e2e and malignancy, each in pieces


def test_frozen_frames_stack_no_stage_time_and_one_frame_draws_no_timeline() -> None:
    """Frozen frames' stage times were stacked (the infer area ramped into each freeze) though their end to
    end was left out; one frame drew a dot on the axis under a five-item legend."""
    from dataclasses import replace

    n = 40
    frozen = np.arange(n) >= 20
    series = FrameSeries(np.arange(n), np.full(n, 9.0), {"infer": np.where(frozen, 0.1, 6.0)}, ("benign",) * n,
                         np.full(n, 0.3), np.ones(n, bool), frozen=frozen)
    svg = render_report(replace(report_data(n), series=ChartSeries.from_frames(series), e2e_stages=("infer",)))
    svg = svg[svg.index("Latency over time"):svg.index("Predictions over time")]
    area = re.search(r'<path d="(M[^"]*)Z" fill="[^"]+" fill-opacity="0.85"', svg)
    assert area is not None
    ys = [float(p.split(",")[1]) for p in re.findall(r"[\d.]+,[\d.]+", area.group(1))]
    top, bottom = ys[:n], ys[n:][::-1]
    assert top[:20] != bottom[:20] and top[20:] == bottom[20:]  # no height over the frozen frames
    one = render_report(replace(report_data(1), series=ChartSeries.from_frames(FrameSeries(
        np.arange(1), np.full(1, 9.0), {}, ("benign",), np.full(1, 0.3), np.ones(1, bool)))))
    assert "One frame: the timelines need two or more" in one and "Latency over time" not in one


def test_a_clipped_latency_timeline_says_so_under_its_legend_not_over_it() -> None:
    from edge_bus.sinks import charts

    e2e = np.full(400, 10.0)
    e2e[200] = 900.0  # a spike far above 3 × p99: the chart is clipped
    drops = np.zeros(400, np.int64)
    drops[::7] = 1
    series = FrameSeries(np.arange(400), e2e, {"preprocess": np.full(400, 1.0)}, ("benign",) * 400,
                         np.full(400, 0.3), np.ones(400, bool), dropped_before=drops)
    svg = charts.latency_timeline(ChartSeries.from_frames(series))
    note = re.search(r'<text x="([\d.]+)" y="([\d.]+)"[^>]*>clipped at', svg)
    legend_y = {float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" font-size="11" fill="[^"]+" '
                                             r'text-anchor="start">dropped frames', svg)}
    assert note is not None and legend_y and float(note.group(2)) > max(legend_y) + 10


def test_class_names_in_text_are_readable_on_white() -> None:
    """'BENIGN' in the verdict badge and the episode table was the bands' amber #e6a528 on white: 2.4:1,
    under WCAG's 4.5:1 for text."""
    from dataclasses import replace

    from edge_bus.sinks import charts

    def luminance(hex_color: str) -> float:
        c = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    for label, color in charts.CLASS_TEXT_COLORS.items():
        assert (1.05 / (luminance(color) + 0.05)) >= 4.5, label
    html = render_report(replace(report_data(50), verdict=VerdictBadge("benign", 0.7)))
    assert f"--t:{charts.CLASS_TEXT_COLORS['benign']}" in html


def test_a_long_runs_episodes_are_listed_up_to_a_bound() -> None:
    """A 100k-frame --loop had 1,667 episodes: brackets 0.56 px apart with their numbers one smear (577 KB of
    SVG), a 1,668-row table, and 190 KB of latency.json."""
    from dataclasses import replace

    from edge_bus.sinks import charts
    from edge_bus.summary import MAX_LISTED_EPISODES, LesionEpisode, Verdict

    episodes = tuple(LesionEpisode(60 * i, 60 * i + 29, 30, 0.5, "benign") for i in range(1500))
    html = render_report(replace(report_data(90_000), episodes=episodes, fps=30.0))
    svg = html[html.index("Class timeline"):html.index("<th>episode</th>")]
    assert 'stroke-width="1.6"/>' not in svg and "numbered brackets" not in html  # no brackets drawn
    table = html[html.index("<th>episode</th>"):]
    assert table[:table.index("</table>")].count("<tr><th>") == charts.MAX_SHOWN_EPISODES
    assert f"The first {charts.MAX_SHOWN_EPISODES} of 1,500 episodes are listed" in html
    doc = Verdict("benign", 0.5, 45_000, 90_000, 0.5, episodes).to_json()
    assert doc["episode_count"] == 1500 and len(doc["episodes"]) == MAX_LISTED_EPISODES  # type: ignore[arg-type]

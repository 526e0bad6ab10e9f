"""OverlayRenderer: draws inside the mask, leaves the rest of the frame alone, never mutates input."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from edge_bus.imaging import to_bgr
from edge_bus.render import HudInfo, OverlayRenderer, OverlayStyle, label_lines, mask_bbox
from edge_bus.types import ROI, Frame, Prediction

H, W = 240, 320


def _frame(pixels: np.ndarray) -> Frame:
    return Frame(index=7, pixels=pixels, t_source=0.2, t_capture=1.0, wall_time=1.7e9)


def _prediction(mask: np.ndarray, label: str = "malignant", lesion: bool = True) -> Prediction:
    probs = {"normal": 0.05, "benign": 0.08, "malignant": 0.87}
    return Prediction(
        mask=mask, probs=probs, malignancy=0.9, lesion=lesion, label=label,
        bbox=mask_bbox(mask), mask_area=float(mask.mean()),
    )  # fmt: skip


def _disk_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), (200, 130), 30, 1, -1)
    return mask


HUD = HudInfo(fps=30.0, latency_ms=12.5, operating_point="balanced")
QUIET = OverlayStyle(show_hud=False)  # no HUD panel, so only the label panel (top-left) and the mask draw


def test_fills_inside_mask_and_leaves_outside_bbox_untouched() -> None:
    gray = np.full((H, W), 100, np.uint8)
    mask = _disk_mask()
    out = OverlayRenderer(QUIET).render(_frame(gray), _prediction(mask), HUD)

    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    inner = cv2.erode(mask.view(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # away from the contour
    assert np.all(out[inner] != (100, 100, 100), axis=1).any()
    assert (out[inner][:, 2] > 100).all(), "malignant fill is red: the R channel must rise inside the mask"
    x, y, w, h = mask_bbox(mask) or (0, 0, 0, 0)
    m = QUIET.contour_thickness  # the anti-aliased contour is centred on the mask edge: it may spill that far
    outside = np.ones((H, W), bool)
    outside[y - m : y + h + m, x - m : x + w + m] = False
    outside[:60, :200] = False  # the label panel
    assert (out[outside] == 100).all()


def test_does_not_modify_the_frame_or_mask() -> None:
    bgr = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    mask = _disk_mask()
    before_px, before_mask = bgr.copy(), mask.copy()
    OverlayRenderer().render(_frame(bgr), _prediction(mask), dataclasses.replace(HUD, frozen=True))
    assert np.array_equal(bgr, before_px) and np.array_equal(mask, before_mask)


def test_no_lesion_draws_no_mask() -> None:
    gray = np.full((H, W), 80, np.uint8)
    out = OverlayRenderer(QUIET).render(_frame(gray), _prediction(_disk_mask(), "normal", lesion=False), HUD)
    assert (out[80:, 150:] == 80).all()
    assert not (out[:60, :200] == 80).all(), "the 'no lesion' label is drawn"


def test_bbox_none_is_computed_and_float_mask_is_thresholded() -> None:
    gray = np.full((H, W), 60, np.uint8)
    prob = _disk_mask().astype(np.float32) * 0.9 + 0.1  # probabilities: 0.1 outside, 1.0 inside
    pred = dataclasses.replace(_prediction(_disk_mask()), mask=prob, bbox=None)
    out = OverlayRenderer(QUIET).render(_frame(gray), pred, HUD)
    assert (out[200:, 10:100] == 60).all()
    assert (out[130, 200] != 60).any()


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1), (H, W, 3), (H, W, 4)])
def test_accepts_gray_bgr_and_bgra(shape: tuple[int, ...]) -> None:
    out = OverlayRenderer().render(_frame(np.zeros(shape, np.uint8)), _prediction(_disk_mask()), HUD)
    assert out.shape == (H, W, 3)


def test_hud_and_frozen_banner_draw_pixels() -> None:
    gray = np.full((H, W), 128, np.uint8)
    pred = _prediction(np.zeros((H, W), bool), "normal", lesion=False)
    plain = OverlayRenderer(QUIET).render(_frame(gray), pred, HUD)
    full = OverlayRenderer().render(_frame(gray), pred, dataclasses.replace(HUD, frozen=True, glass_to_glass_ms=40))
    assert (plain[-30:] == 128).all() and not (full[-30:] == 128).all(), "HUD at the bottom"
    assert (plain[:30, -100:] == 128).all() and not (full[:30, -100:] == 128).all(), "FROZEN top-right"


def test_a_file_runs_hud_says_its_latency_includes_the_queue() -> None:
    gray = np.full((H, W), 128, np.uint8)
    pred = _prediction(np.zeros((H, W), bool), "normal", lesion=False)

    def hud_right_edge(hud: HudInfo) -> int:  # the last column the HUD panel (bottom-left) draws on
        bottom = OverlayRenderer().render(_frame(gray), pred, hud)[-30:]
        return int(np.nonzero((bottom != 128).any(axis=(0, 2)))[0].max())

    assert hud_right_edge(dataclasses.replace(HUD, latency_queued=True)) > hud_right_edge(HUD) + 40


def test_a_frozen_frames_hud_shows_no_latency() -> None:
    """A frozen frame (no inference) showed 'e2e 0.1 ms g2g 1 ms', the time to repeat the last answer."""
    gray = np.full((H, W), 128, np.uint8)
    pred = _prediction(np.zeros((H, W), bool), "normal", lesion=False)

    def hud_right_edge(hud: HudInfo) -> int:
        bottom = OverlayRenderer().render(_frame(gray), pred, hud)[-30:]
        return int(np.nonzero((bottom != 128).any(axis=(0, 2)))[0].max())

    none = dataclasses.replace(HUD, latency_ms=None, frozen=True, latency_queued=True)
    assert hud_right_edge(none) < hud_right_edge(dataclasses.replace(HUD, latency_ms=12.5)) - 5  # "--", no queue


def test_panels_move_off_a_lesion_in_their_corner_and_stay_while_it_is_clear() -> None:
    """The label chip sat over the top of a lesion near the top-left corner, hiding its upper margin; the
    FPS/latency line likewise at the bottom-left."""
    gray = np.full((H, W), 128, np.uint8)
    renderer = OverlayRenderer(OverlayStyle(alpha=0.0, contour_thickness=0))  # only the panels draw
    corner = np.zeros((H, W), bool)
    corner[5:60, 5:70] = True  # top-left
    drawn = renderer.render(_frame(gray), _prediction(corner), HUD) != 128
    assert not drawn[:40, :90].any() and drawn[:40, -90:].any()  # the label went top-right
    low = np.zeros((H, W), bool)
    low[180:235, 5:90] = True  # bottom-left: the HUD goes bottom-right; the label stays top-right
    drawn = renderer.render(_frame(gray), _prediction(low), HUD) != 128
    assert not drawn[-30:, :90].any() and drawn[-30:, -90:].any() and drawn[:40, -90:].any()
    frozen = renderer.render(_frame(gray), _prediction(corner), dataclasses.replace(HUD, frozen=True)) != 128
    assert frozen[:40, -90:].any() and not frozen[5:60, 5:70].any()  # the banner keeps off the lesion too


def test_a_run_frozen_from_its_start_shows_no_answer_yet() -> None:
    """Before any inference (the board froze the image from the start) the chip read a green 'no lesion'."""
    from edge_bus.render import label_lines

    gray = np.full((H, W), 128, np.uint8)
    pred = _prediction(np.zeros((H, W), bool), "normal", lesion=False)
    waiting = dataclasses.replace(HUD, waiting=True, frozen=True, latency_ms=None)
    assert label_lines(pred, waiting)[0] == "no answer yet" and label_lines(pred, HUD)[0] == "no lesion"
    chip = OverlayRenderer(QUIET).render(_frame(gray), pred, waiting)
    corner = chip[8, 8]  # inside the chip's box, left of its text
    assert tuple(int(v) for v in corner) == OverlayStyle().color_other


def test_style_validation_and_to_bgr_of_uint16() -> None:
    with pytest.raises(ValueError):
        OverlayStyle(alpha=1.5)
    img = to_bgr(np.array([[0, 1000], [2000, 4000]], np.uint16))
    assert img.dtype == np.uint8 and img[1, 1].tolist() == [255, 255, 255] and img[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("red", [[0, 0, 255], np.array([0, 0, 255])], ids=["list", "array"])
def test_a_colour_given_as_a_list_or_an_array_draws(red: object) -> None:
    """The style check accepted them, then the first lesion frame crashed (a list is unhashable, an
    array has no truth value): they are kept as tuples."""
    style = OverlayStyle(mask_color=red, contour_color=red, alpha=1.0, show_hud=False)  # type: ignore[arg-type]
    assert style.mask_color == (0.0, 0.0, 255.0)
    mask = np.zeros((240, 320), bool)
    mask[150:220, 220:300] = True  # bottom right: away from the label panel (top left)
    out = OverlayRenderer(style).render(_frame(np.full((240, 320), 128, np.uint8)), _prediction(mask), HUD)
    assert out[185, 260].tolist() == [0, 0, 255]


def test_warm_up_draws_at_the_given_size_and_ignores_an_unknown_one() -> None:
    r = OverlayRenderer()
    r.warm_up((0, 0))  # a capture device that did not report its size: nothing to warm
    assert r._layout is None
    r.warm_up((64, 48))
    assert r._layout is not None and r._layout[0] == (64, 48)  # the layout for that size is cached


def test_label_shows_the_malignancy_against_the_operating_points_threshold() -> None:
    mask = np.zeros((40, 40), bool)
    benign = dataclasses.replace(_prediction(mask, "benign"), malignancy=0.77)
    hud = HudInfo(fps=30.0, latency_ms=9.0, operating_point="balanced", threshold=0.788)
    assert label_lines(benign, hud) == ("BENIGN  malignancy 0.770", "op: balanced, malignant at >= 0.788")
    close = HudInfo(fps=30.0, latency_ms=9.0, operating_point="balanced", threshold=0.892483)
    # just under / just over the threshold: the shown numbers agree with the label
    assert label_lines(dataclasses.replace(benign, malignancy=0.89246), close) == (
        "BENIGN  malignancy 0.892", "op: balanced, malignant at >= 0.893")
    malignant = dataclasses.replace(_prediction(mask, "malignant"), malignancy=0.89249)
    assert label_lines(malignant, close)[0] == "MALIGNANT  malignancy 0.893"
    normal = _prediction(mask, "normal", lesion=False)
    assert label_lines(normal, dataclasses.replace(hud, threshold=None)) == ("no lesion", "op: balanced")


def test_panels_stay_inside_the_scan_area_and_leave_the_scanners_text_alone() -> None:
    """A capture card's frame: the scanner's own text (patient, MI / TI) in the margins around the scan
    area. The label, HUD and FROZEN panels are drawn inside the scan area, so none of that text is
    covered; with ``panels_in_scan_area=False`` they go to the frame's corners, over it."""
    h, w = 480, 640
    area = ROI(160, 60, 400, 360)
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[area.y : area.y + area.h, area.x : area.x + area.w] = 100
    cv2.putText(pixels, "MI 1.1 TIS 0.4", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    cv2.putText(pixels, "PATIENT 0042", (5, 470), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    mask = np.zeros((h, w), bool)
    mask[200:260, 300:380] = True
    hud = dataclasses.replace(HUD, scan_area=area, frozen=True)
    inside = np.zeros((h, w), bool)
    inside[area.y : area.y + area.h, area.x : area.x + area.w] = True
    out = OverlayRenderer().render(_frame(pixels), _prediction(mask), hud)
    assert (out[~inside] == pixels[~inside]).all(), "a panel covered the margins"
    for rows in (slice(area.y, area.y + 40), slice(area.y + area.h - 40, area.y + area.h)):  # label, HUD
        assert (out[rows, area.x : area.x + 120] != 100).any()
    assert (out[area.y : area.y + 40, area.x + area.w - 120 : area.x + area.w, 2] > 150).any()  # FROZEN, red
    corners = OverlayRenderer(OverlayStyle(panels_in_scan_area=False)).render(_frame(pixels), _prediction(mask), hud)
    assert (corners[:40, :120] != pixels[:40, :120]).any()  # the frame's top-left corner, over the text
    no_area = OverlayRenderer().render(_frame(pixels), _prediction(mask), dataclasses.replace(HUD, frozen=True))
    assert np.array_equal(no_area, corners)  # without a scan area: the frame's corners


@pytest.mark.parametrize("size", [(200, 200), (160, 120), (220, 900)])
def test_text_on_a_narrow_area_shrinks_to_fit_instead_of_being_cut(size: tuple[int, int]) -> None:
    """A scan area under about 230 px wide cut the label chip and the HUD off at its right edge: the text
    is made smaller until the panels fit, with the margin kept on the right too."""
    w, h = size
    gray = np.full((h, w), 128, np.uint8)
    hud = HudInfo(fps=243.2, latency_ms=12.3, operating_point="balanced", threshold=0.4, latency_queued=True,
                  glass_to_glass_ms=15.0)
    out = OverlayRenderer().render(_frame(gray), _prediction(np.zeros((h, w), bool), "benign", lesion=False), hud)
    drawn = np.nonzero((out != 128).any(axis=(0, 2)))[0]
    margin = max(3, round(min(w, h) * 0.015))
    assert drawn.min() == margin and drawn.max() < w - margin  # both panels inside, a margin on each side


def test_text_fitted_to_a_narrow_area_keeps_its_size_as_the_numbers_change() -> None:
    """Fitted to the text as it stood, the HUD changed size between "e2e 9.9 ms" and "e2e 10.1 ms" (0.35 to
    0.30 in a 166 px area): it is fitted to the numbers at their widest."""
    gray = np.full((166, 166), 128, np.uint8)
    pred = _prediction(np.zeros((166, 166), bool), "normal", lesion=False)

    def hud_rows(e2e: float) -> int:  # the height of the HUD panel (bottom)
        hud = HudInfo(fps=30.0, latency_ms=e2e, operating_point="balanced", glass_to_glass_ms=15.0)
        out = OverlayRenderer().render(_frame(gray), pred, hud)
        rows = np.nonzero((out[83:] != 128).any(axis=(1, 2)))[0]
        return int(rows.max() - rows.min())

    assert hud_rows(9.9) == hud_rows(10.1) == hud_rows(120.4)

"""Hostile input to the detection tools: box IoU, sliding windows, NMS and matching (issue 21).

The classes of bad input: sizes that would exhaust memory (refused before anything is
allocated, with the limit and the sizes given), non-finite numbers, and empty inputs
(empty in, empty out where that is the right answer). Right answers are checked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepimaging import _checks, metrics
from deepimaging._checks import MAX_BOX_PAIRS
from deepimaging.interpret import detection
from deepimaging.models import BasicCNN

# ---------------------------------------------------------------- box_jaccard


def test_box_jaccard_refuses_a_pair_table_too_large_before_allocating_it():
    # Two lists of 10**6 boxes would be an IoU table of 10**12 float64 (8 TB): refused at once,
    # naming both parameters, their sizes and the limit. (expand: the boxes take no memory either.)
    many = torch.zeros(1, 4, dtype=torch.float64).expand(10**6, 4)
    with pytest.raises(ValueError, match=r"boxes_a and boxes_b hold 1000000 and 1000000 boxes") as err:
        metrics.box_jaccard(many, many)
    assert f"more than the {MAX_BOX_PAIRS}" in str(err.value)


def test_box_jaccard_pair_limit_is_on_the_product(monkeypatch):
    # The limit is on N x M (the table's size), whichever list is long: with a limit of 6 pairs,
    # 2 x 3 boxes compute and 1 x 7 do not.
    monkeypatch.setattr(_checks, "MAX_BOX_PAIRS", 6)
    assert metrics.box_jaccard(torch.zeros(2, 4), torch.zeros(3, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="hold 1 and 7 boxes: 7 pairs, more than the 6"):
        metrics.box_jaccard(torch.zeros(1, 4), torch.zeros(7, 4))


def test_box_jaccard_of_a_thousand_by_a_thousand_boxes_matches_the_hand_value():
    # Well below the limit; box a (area 4) and box b (area 2) share 1 pixel: IoU 1 / (4 + 2 - 1).
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]]).expand(1000, 4)
    b = torch.tensor([[1.0, 0.0, 3.0, 1.0]]).expand(1000, 4)
    iou = metrics.box_jaccard(a, b)
    assert iou.shape == (1000, 1000)
    assert torch.allclose(iou, torch.full_like(iou, 1 / 5))


@pytest.mark.parametrize("empty", [[], np.zeros((0, 4)), torch.zeros(0, 4)])
def test_box_jaccard_of_no_boxes_is_an_empty_table(empty):
    assert metrics.box_jaccard(empty, [[0, 0, 1, 1], [1, 1, 2, 2]]).shape == (0, 2)
    assert metrics.box_jaccard([[0, 0, 1, 1]], empty).shape == (1, 0)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([[0, 0, 1, float("nan")]], "boxes_a must hold finite coordinates"),
        ([[0, 0, float("inf"), 1]], "boxes_a must hold finite coordinates"),
        ([[2, 0, 1, 1]], r"boxes_a must be \(x0, y0, x1, y1\) with x0 <= x1"),
        ([[0, 0, 1]], r"boxes_a must have shape \(N, 4\).*\(1, 3\)"),
        ([[[0, 0, 1, 1]]], r"boxes_a must have shape \(N, 4\).*\(1, 1, 4\)"),
    ],
)
def test_box_jaccard_refuses_bad_boxes_naming_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.box_jaccard(bad, [[0, 0, 1, 1]])


# ---------------------------------------------------------------- match_detections


def test_match_detections_names_its_own_parameters():
    with pytest.raises(ValueError, match="true_boxes must hold finite coordinates"):
        detection.match_detections([[0, 0, 1, 1]], [[0, 0, float("nan"), 1]])
    with pytest.raises(TypeError, match="boxes must be boxes of real numbers"):
        detection.match_detections("boxes", [[0, 0, 1, 1]])
    many = torch.zeros(1, 4, dtype=torch.float64).expand(10**6, 4)
    with pytest.raises(ValueError, match="boxes and true_boxes hold 1000000 and 1000000 boxes"):
        detection.match_detections(many, many)


def test_match_detections_with_no_detections_misses_every_true_box():
    # Hand count: nothing detected, two true boxes, so 2 false negatives and recall 0.
    result = detection.match_detections([], [[0, 0, 2, 2], [4, 4, 6, 6]])
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (0, 0, 2)
    assert result["recall"] == 0.0 and np.isnan(result["precision"])
    assert result["best_iou"].tolist() == [0.0, 0.0] and result["matches"] == []


def test_match_detections_with_no_true_boxes_counts_every_detection_false():
    result = detection.match_detections([[0, 0, 2, 2]], torch.zeros(0, 4))
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (0, 1, 0)
    assert result["precision"] == 0.0 and np.isnan(result["recall"]) and result["best_iou"].shape == (0,)


# ---------------------------------------------------------------- heatmap_detections


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 1.5])
def test_heatmap_detections_refuses_heatmaps_that_are_not_probabilities(value):
    # A NaN compares false with the threshold: without the check, a NaN heatmap gives no detections.
    heatmaps = torch.full((2, 3, 3), 0.5)
    heatmaps[0, 1, 1] = value
    with pytest.raises(ValueError, match=r"heatmaps must hold probabilities in \[0, 1\]"):
        detection.heatmap_detections(heatmaps, 8, 4)


def test_heatmap_detections_refuses_integer_heatmaps_and_missing_classes():
    with pytest.raises(TypeError, match="heatmaps must hold probabilities.*int64"):
        detection.heatmap_detections(torch.ones(2, 3, 3, dtype=torch.long), 8, 4)
    with pytest.raises(ValueError, match=r"at least 1 class.*\(0, 3, 3\)"):
        detection.heatmap_detections(torch.zeros(0, 3, 3), 8, 4)
    with pytest.raises(ValueError, match=r"at least 2 class.*background.*\(1, 3, 3\)"):
        detection.heatmap_detections(torch.ones(1, 3, 3), 8, 4, background=0)


@pytest.mark.parametrize("shape", [(2, 0, 3), (2, 3, 0)])
def test_heatmap_detections_of_an_empty_grid_detects_nothing(shape):
    boxes, scores, labels = detection.heatmap_detections(torch.ones(shape), 8, 4)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


# ---------------------------------------------------------------- sliding windows


def test_window_boxes_refuses_a_grid_too_large_before_allocating_it():
    # 10**12 windows of 4 numbers each: refused with the grid it would have made and the limit.
    with pytest.raises(ValueError, match=f"= 1000000000000 windows, more than {detection.MAX_WINDOWS}"):
        detection.window_boxes((10**6, 10**6), 1, 1)


def test_window_boxes_takes_a_square_image_size_as_one_int():
    # Hand grid: a 32 px window at stride 16 over 64 px gives 3 positions, the first box (0, 0, 32, 32).
    boxes = detection.window_boxes(64, 32, 16)
    assert boxes.shape == (3, 3, 4) and boxes[0, 0].tolist() == [0.0, 0.0, 32.0, 32.0]
    with pytest.raises(TypeError, match="image_size must be an integer"):
        detection.window_boxes("64", 32, 16)


def test_sliding_window_refuses_a_grid_too_large(monkeypatch):
    # A real grid of 2**24 windows needs a 4096 px image; the same check with a smaller limit.
    monkeypatch.setattr(detection, "MAX_WINDOWS", 8)
    with pytest.raises(ValueError, match="= 9 windows, more than 8; use a larger stride"):
        detection.sliding_window(BasicCNN(3, 2), torch.rand(3, 16, 16), 8, 4)


def test_sliding_window_bounds_the_bytes_of_a_batch_not_its_count(monkeypatch):
    # Room for two 3 x 8 x 8 float32 windows per batch: batch_size 3 is refused, 2 is fine, and a
    # huge batch_size over a grid of only one window is fine (the batch is never larger than the grid).
    monkeypatch.setattr(detection, "MAX_BATCH_BYTES", 2 * 3 * 8 * 8 * 4)
    model, image = BasicCNN(3, 2), torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match=r"batch_size 3 makes batches of .* choose batch_size <= 2"):
        detection.sliding_window(model, image, 8, 4, batch_size=3)
    assert detection.sliding_window(model, image, 8, 4, batch_size=2).shape == (2, 3, 3)
    assert detection.sliding_window(model, image[:, :8, :8], 8, 4, batch_size=10**9).shape == (2, 1, 1)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_sliding_window_refuses_a_non_finite_image(value):
    image = torch.rand(3, 16, 16)
    image[0, 3, 3] = value
    with pytest.raises(ValueError, match=r"image must have values in \[0, 1\]"):
        detection.sliding_window(BasicCNN(3, 2), image, 8, 4)

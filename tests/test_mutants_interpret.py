"""Tests written to kill the mutants of ``deepimaging.interpret`` that the interpret tests let survive.

Each test names the mutant it was written for (``SAMPLE=60 bash benchmarks/mutation.sh interpret``,
see benchmarks/mutation_results.md). Oracles: a per-window loop over crops, boxes and IoUs worked
out by hand, and the documented contract that bad input is refused naming the parameter.
"""

import math

import pytest
import torch
from torch import nn

from deepimaging.interpret import (
    extract_features,
    grad_cam,
    heatmap_detections,
    match_detections,
    saliency_map,
    sliding_window,
    tsne,
    window_boxes,
)
from deepimaging.models import BasicCNN


class _Smallest(nn.Module):
    """The smallest model method="dense" accepts: a 1x1 convolution, global pool, flatten, linear."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4, 2)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_dense_sliding_window_accepts_a_three_module_trunk_and_matches_a_loop_over_crops():
    # detection._dense_parts 22 (a 3-module `features` refused). With a 1x1 convolution the dense
    # result has no border effect, so it equals classifying each crop on its own.
    model = _Smallest().eval()
    image = torch.rand(3, 8, 10, generator=torch.Generator().manual_seed(1))
    heatmaps = sliding_window(model, image, window=4, stride=2, method="dense")
    with torch.no_grad():
        expected = torch.stack(
            [
                torch.stack(
                    [model(image[None, :, i : i + 4, j : j + 4]).softmax(1)[0] for j in range(0, 7, 2)]
                )
                for i in range(0, 5, 2)
            ]
        ).permute(2, 0, 1)
    torch.testing.assert_close(heatmaps, expected, atol=1e-5, rtol=1e-5)


def test_heatmap_detections_score_each_window_by_its_own_largest_class_probability():
    # detection.heatmap_detections 59 (the largest probability over the whole map, not per window).
    # Three disjoint 4x4 windows in a row; per-window maxima 0.9, 0.6, 0.8; threshold 0.7 keeps two.
    heatmaps = torch.tensor([[[0.1, 0.6, 0.2]], [[0.9, 0.4, 0.8]]])
    boxes, scores, labels = heatmap_detections(heatmaps, window=4, stride=4, threshold=0.7)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 4.0, 4.0], [8.0, 0.0, 12.0, 4.0]]))
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8]))
    assert labels.tolist() == [1, 1]


def test_heatmap_detections_names_stride_when_it_is_zero():
    # detection.heatmap_detections 77.
    with pytest.raises(ValueError, match="^stride must be in"):
        heatmap_detections(torch.rand(2, 3, 3), window=4, stride=0)


def test_match_detections_with_nothing_found_or_nothing_matched():
    # detection.match_detections 44 (precision divides by zero boxes) and 63 (mean IoU of no match).
    true_boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 14.0, 14.0]])
    none = match_detections(torch.zeros(0, 4), true_boxes)
    assert (none["true_positives"], none["false_positives"], none["false_negatives"]) == (0, 0, 2)
    assert math.isnan(none["precision"]) and none["recall"] == 0.0 and math.isnan(none["mean_iou"])
    # A detection overlapping the first box by 2x4 of a 6x4 union: IoU 1/3 < 0.5, no match.
    missed = match_detections(torch.tensor([[2.0, 0.0, 6.0, 4.0]]), true_boxes)
    assert (missed["true_positives"], missed["false_positives"], missed["false_negatives"]) == (0, 1, 2)
    assert missed["precision"] == 0.0 and math.isnan(missed["mean_iou"])
    torch.testing.assert_close(missed["best_iou"], torch.tensor([1 / 3, 0.0]))


@pytest.mark.parametrize("window", [(10, 4), (4, 10)], ids=["too tall", "too wide"])
def test_window_boxes_refuses_a_window_that_does_not_fit_either_way(window):
    # detection.window_boxes 23 ("taller and wider" for "taller or wider").
    with pytest.raises(ValueError, match="^window must fit in the image"):
        window_boxes((8, 8), window, 2)


def test_attribution_errors_name_the_parameter():
    # attribution.grad_cam 9 and attribution.saliency_map 18.
    model, image = BasicCNN(3, 2, widths=(4, 8)).eval(), torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="^interpolate_mode must be one of"):
        grad_cam(model, image, "features.0", interpolate_mode="bicubic")
    with pytest.raises(ValueError, match="^noise_level must be in"):
        saliency_map(model, image, smoothgrad_samples=2, noise_level=-0.1)


def test_feature_and_tsne_errors_name_the_parameter():
    # features._images_of 2 and neighbors.tsne 8.
    with pytest.raises(ValueError, match="^data must"):
        extract_features(BasicCNN(3, 2, widths=(4, 8)), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="^features must have shape"):
        tsne(torch.rand(5, 2, 3))

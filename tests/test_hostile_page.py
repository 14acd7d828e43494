"""Hostile but realistic input to the results page, the widgets and the plots (issue 21).

Each test is one case a student met: a broken file, a typo, an empty batch. The
expected outcome is either the right result, checked against an independent
oracle (an HTML parser, the pixels shown), or a ValueError / TypeError whose message names the parameter.
"""

from __future__ import annotations

import html.parser

import matplotlib
import numpy as np
import pytest
import torch

from deepimaging import plots
from deepimaging.report import render_report

matplotlib.use("Agg")


# ---------------------------------------------------------------- results page


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        self.hrefs += [value for key, value in attrs if key == "href"]


def test_results_page_links_only_http_https_and_relative_urls(tmp_path):
    from urllib.parse import urlsplit

    links = {
        "code": "javascript:alert(document.cookie)",
        "tabbed": "java\tscript:alert(1)",
        "spaced": "  JavaScript:alert(1)",
        "data": "data:text/html,<script>alert(1)</script>",
        "paper": "https://example.org/paper.pdf",
        "table": "results.csv",
    }
    with pytest.warns(UserWarning, match="is not an http, https or relative URL"):
        page = render_report(tmp_path, title="t", links=links).read_text()
    parser = _Links()
    parser.feed(page)
    # The browser's view of each href (html.parser decodes entities; the URL parser, as
    # browsers do, drops tabs and leading spaces) has only the allowed schemes.
    schemes = {urlsplit(href.strip()).scheme for href in parser.hrefs}
    assert parser.hrefs == ["https://example.org/paper.pdf", "results.csv"]
    assert schemes <= {"https", ""}
    assert "javascript:alert(document.cookie)" in page  # still shown, as inert text


# ---------------------------------------------------------------- widgets and plots


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bits": 0}, r"bits must be in \[1, 12\]; got 0"),
        ({"bits": 13}, r"bits must be in \[1, 12\]"),
        ({"photons": 0.5}, r"photons must be in \[1.0, 100000.0\]"),
        ({"photons": float("nan")}, "photons must be a number; got NaN"),
        ({"sigma": 50.0}, r"sigma must be in \[0.0, 3.0\]"),
    ],
)
def test_physics_explorer_refuses_a_start_value_its_slider_would_clamp(options, message):
    from deepimaging.widgets import PhysicsExplorer

    with pytest.raises(ValueError, match=message):
        PhysicsExplorer(torch.rand(1, 1, 32, 32), **options)


def test_imshow_with_ax_none_draws_on_a_new_axes_and_returns_it():
    import matplotlib.pyplot as plt

    image = torch.rand(3, 5, 7)
    ax = plots.imshow(None, image, title="t")
    shown = ax.get_images()[0].get_array()
    np.testing.assert_allclose(shown, image.permute(1, 2, 0).numpy(), atol=1e-7)
    plt.close(ax.figure)
    with pytest.raises(TypeError, match="image must be a tensor or array of numbers"):
        plots.imshow(None, [["a"]])


PLOTS_OF_ARRAYS = [
    ("plot_psf", "psf", lambda v: plots.plot_psf(v)),
    ("plot_sensor_mask", "layer_or_mask", lambda v: plots.plot_sensor_mask(v)),
    ("plot_filter_tile", "tile", lambda v: plots.plot_filter_tile(v)),
    ("plot_pupil", "microscope_or_pupil", lambda v: plots.plot_pupil(v)),
    ("filter_grid", "weights", lambda v: plots.filter_grid(v)),
    ("imshow", "image", lambda v: plots.imshow(None, v)),
    ("detection_boxes", "boxes", lambda v: plots.detection_boxes(torch.rand(3, 8, 8), boxes=v)),
]
HOSTILE_ARRAYS = {
    "None": None,
    "text": [["a", "b"], ["c", "d"]],
    "ragged": [[0.0, 1.0], [2.0]],
    "empty": torch.zeros(0, 0),
    "nan": torch.full((3, 4, 4), float("nan")),
    "5-D": torch.zeros(1, 1, 1, 1, 1),
}


@pytest.mark.parametrize("function, name, call", PLOTS_OF_ARRAYS, ids=[p[0] for p in PLOTS_OF_ARRAYS])
@pytest.mark.parametrize("kind", sorted(HOSTILE_ARRAYS))
def test_plots_refuse_what_they_cannot_draw_naming_the_argument(function, name, call, kind):
    value = HOSTILE_ARRAYS[kind]
    if kind == "nan" and function == "imshow":
        plots.imshow(None, value)  # NaN pixels are drawn as holes: allowed for images
        return
    if function == "detection_boxes":
        if kind in ("None", "empty"):  # no boxes: documented, nothing to draw over the image
            return
        if kind == "nan":
            value = torch.full((1, 4), float("nan"))
    with pytest.raises((ValueError, TypeError), match=name):
        call(value)


def test_detection_boxes_with_no_boxes_draws_only_the_image():
    ax = plots.detection_boxes(torch.rand(3, 8, 8), true_boxes=[], boxes=torch.zeros(0, 4))
    assert len(ax.patches) == 0 and len(ax.get_images()) == 1


def test_threshold_explorer_holds_a_threshold_outside_the_scores_instead_of_clamping_it():
    from sklearn.metrics import confusion_matrix

    from deepimaging.widgets import ThresholdExplorer

    y_true, scores = np.array([0, 1, 0, 1]), np.array([0.6, 0.9, 0.7, 0.8])
    explorer = ThresholdExplorer(y_true, scores, threshold=0.5)
    assert explorer.slider.value == 0.5 and explorer.slider.min <= 0.5
    # At 0.5 every sample is called positive: the oracle's counts, not those at the lowest score.
    tn, fp, fn, tp = confusion_matrix(y_true, scores >= 0.5).ravel()
    assert explorer.counts() == {"TP": tp, "FP": fp, "FN": fn, "TN": tn}
    with pytest.raises(ValueError, match="threshold must be a finite number; got inf"):
        ThresholdExplorer(y_true, scores, threshold=float("inf"))
    with pytest.raises(ValueError, match="threshold must be a number; got NaN"):
        ThresholdExplorer(y_true, scores, threshold=float("nan"))
    with pytest.raises(TypeError, match="classes must be two class names"):
        ThresholdExplorer(y_true, scores, classes="ab")


@pytest.mark.parametrize(
    "explorer, options, error, message",
    [
        ("OcclusionExplorer", {"baselines": float("nan")}, ValueError, "baselines must be a number"),
        ("OcclusionExplorer", {"baselines": 2.0}, ValueError, r"baselines must be in \[0.0, 1.0\]"),
        ("OcclusionExplorer", {"patch_sizes": 8}, TypeError, "patch_sizes must be a list"),
        ("OcclusionExplorer", {"batch_size": 0}, ValueError, "batch_size must be in"),
        ("FilterExplorer", {"max_filters": 0}, ValueError, "max_filters must be in"),
        ("EmbeddingExplorer", {"seed": -1}, ValueError, "seed must be in"),
        ("EmbeddingExplorer", {"thumbnails": 0.5}, TypeError, "thumbnails must be an integer"),
        ("EmbeddingExplorer", {"click_radius": float("inf")}, ValueError, "click_radius must be in"),
    ],
)
def test_explorers_check_their_options_before_computing_anything(explorer, options, error, message):
    from deepimaging import widgets
    from deepimaging.data import ImageDataset
    from deepimaging.models import BasicCNN

    model = BasicCNN(in_channels=1, num_classes=2, widths=(4,))
    data = ImageDataset(torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    first = data if explorer == "EmbeddingExplorer" else data.images
    with pytest.raises(error, match=message):
        getattr(widgets, explorer)(
            model, first if explorer != "FilterExplorer" else data.images[0], **options
        )

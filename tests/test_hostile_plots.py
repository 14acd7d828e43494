"""Hostile input to the study and training figures (issue 21).

A dict where a StudyResults or History belongs, None, an empty history, a NaN loss, an
unknown sweep or metric, a whole dataset handed to a grid: each is a ValueError or
TypeError naming the parameter, raised before a figure is made (no half-drawn figure is left
open in the notebook). Right results are checked against hand-computed numbers.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from deepimaging import plots
from deepimaging.plots._common import MAX_PANELS
from deepimaging.study import StudyConfig, StudyResults, Sweep
from deepimaging.train import History

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    """Each test starts with no figure; a refused call must not leave one behind."""
    plt.close("all")
    yield
    plt.close("all")


def _results(points=True):
    config = StudyConfig(sweeps=[Sweep("quantize", [1, 8])], seeds=[0, 1], size=16, widths=[4])
    matrix = [[3, 1], [0, 4]]  # accuracy 7 / 8
    records = [
        {
            "sweep": "quantize",
            "value": value,
            "seed": seed,
            "classes": ["a", "b"],
            "confusion_matrix": matrix,
            "accuracy": 0.5 + 0.25 * seed,  # mean over seeds 0.625
            "balanced_accuracy": 0.875,
            "macro_f1": 0.8,
            "macro_auc": 0.9,
            "recall": {"a": 0.75, "b": 1.0},
            "warnings": [],
        }
        for value in (1, 8)
        for seed in (0, 1)
    ]
    return StudyResults(config, records if points else [])


def _history(**changes):
    settings = dict(
        train_loss=[1.0, 0.5], train_accuracy=[0.6, 0.9], val_loss=[1.1, 0.7], val_accuracy=[0.5, 0.8]
    )
    return History(**{**settings, **changes})


# ---------------------------------------------------------------- plot_accuracy_vs_parameter


@pytest.mark.parametrize("bad", [None, {"points": []}, [1, 2], "results.json"])
def test_accuracy_plot_refuses_what_is_not_a_study_result(bad):
    with pytest.raises(TypeError, match=r"results must be a StudyResults .*got " + type(bad).__name__):
        plots.plot_accuracy_vs_parameter(bad)
    assert plt.get_fignums() == []


def test_accuracy_plot_of_a_study_with_no_finished_point_says_so():
    with pytest.raises(ValueError, match="results holds no finished points yet"):
        plots.plot_accuracy_vs_parameter(_results(points=False))
    assert plt.get_fignums() == []


def test_accuracy_plot_refuses_an_unknown_sweep_or_metric_naming_the_choices():
    with pytest.raises(
        ValueError, match=r"sweeps must name sweeps of this study, \['quantize'\]; got 'qantize'"
    ):
        plots.plot_accuracy_vs_parameter(_results(), sweeps=["qantize"])
    with pytest.raises(ValueError, match=r"metric must be one of the recorded metrics \['accuracy', "):
        plots.plot_accuracy_vs_parameter(_results(), metric="recall")
    with pytest.raises(TypeError, match="chance must be True or False"):
        plots.plot_accuracy_vs_parameter(_results(), chance="no")
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes .* or None; got str"):
        plots.plot_accuracy_vs_parameter(_results(), ax="left")
    assert plt.get_fignums() == []


def test_accuracy_plot_refuses_a_nan_metric_instead_of_leaving_a_silent_gap():
    results = _results()
    for point in results.select("quantize", 8):
        point["accuracy"] = float("nan")
    with pytest.raises(ValueError, match="results holds accuracy = nan at sweep 'quantize', value 8"):
        plots.plot_accuracy_vs_parameter(results, metric="accuracy")
    assert plt.get_fignums() == []


def test_accuracy_plot_takes_one_sweep_name_as_a_list_of_one():
    # A string is one sweep, not a list of letters (which drew an empty plot).
    ax = plots.plot_accuracy_vs_parameter(_results(), sweeps="quantize", metric="accuracy")
    (bars,) = ax.containers  # one sweep: one errorbar
    line = bars.lines[0]
    assert bars.get_label() == "quantize (n=2 seeds)"
    assert list(line.get_ydata()) == pytest.approx([0.625, 0.625])  # (0.5 + 0.75) / 2 by hand


# ---------------------------------------------------------------- plot_study_confusion_matrices


def test_confusion_matrices_refuse_a_dict_and_an_unknown_value_before_drawing():
    with pytest.raises(TypeError, match="results must be a StudyResults"):
        plots.plot_study_confusion_matrices({"quantize": [[1]]}, "quantize", [1])
    with pytest.raises(ValueError, match="no finished points for sweep 'quantize' at value 4"):
        plots.plot_study_confusion_matrices(_results(), "quantize", [1, 4])
    assert plt.get_fignums() == []  # the value 1 was fine, but no half-drawn figure is left


@pytest.mark.parametrize(
    "values, error, message",
    [
        ([], ValueError, "values is empty"),
        ("1,8", TypeError, "values must be a list of parameter values"),
        ([1, "8"], TypeError, "values must be a list of numbers"),
        (range(MAX_PANELS + 1), ValueError, f"more than the {MAX_PANELS}"),
    ],
)
def test_confusion_matrices_refuse_bad_values(values, error, message):
    with pytest.raises(error, match=message):
        plots.plot_study_confusion_matrices(_results(), "quantize", values)


def test_confusion_matrices_of_one_value_given_as_a_number():
    fig = plots.plot_study_confusion_matrices(_results(), "quantize", 8)
    assert len(fig.axes) == 1
    # Summed over the two seeds: accuracy (3 + 4) * 2 / 16, as the panel's title says.
    assert "accuracy 0.88" in fig.axes[0].get_title()


# ---------------------------------------------------------------- plot_sensor_examples


@pytest.mark.parametrize(
    "images, error, message",
    [
        (None, TypeError, "images must be a torch.Tensor"),
        (torch.zeros(0, 3, 8, 8), ValueError, "images x values is empty"),
        (torch.full((2, 3, 8, 8), float("nan")), ValueError, r"images must have values in \[0, 1\]"),
        (torch.rand(3, 8, 8), ValueError, r"images must have shape \(N, C, H, W\)"),
        (torch.rand(MAX_PANELS, 1, 2, 2), ValueError, f"would make {2 * MAX_PANELS} panels"),
    ],
)
def test_sensor_examples_refuse_bad_images(images, error, message):
    with pytest.raises(error, match=message):
        plots.plot_sensor_examples(images, "quantize", [1, 8])
    assert plt.get_fignums() == []


def test_sensor_examples_refuse_a_bad_layer_value_or_labels_before_drawing():
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="quantize"):
        plots.plot_sensor_examples(images, "quantize", [1, 10**6])
    with pytest.raises(ValueError, match="unknown layer|qantize"):
        plots.plot_sensor_examples(images, "qantize", [1])
    with pytest.raises(ValueError, match=r"labels must hold class indices in range\(2\)"):
        plots.plot_sensor_examples(images, "quantize", [1], labels=[0, 5], classes=["a", "b"])
    with pytest.raises(ValueError, match="labels must hold one label per image; got 1 for 2"):
        plots.plot_sensor_examples(images, "quantize", [1], labels=[0], classes=["a", "b"])
    with pytest.raises(TypeError, match="options must be a dict"):
        plots.plot_sensor_examples(images, "quantize", [1], options=["bits"])
    assert plt.get_fignums() == []


# ---------------------------------------------------------------- plot_bits_map


@pytest.mark.parametrize(
    "bits_map, error, message",
    [
        (torch.full((4, 4), float("nan")), ValueError, "bits_map must be finite"),
        (torch.zeros(0, 4), ValueError, "bits_map is empty"),
        (torch.zeros(1, 4, 4), ValueError, r"bits_map must have shape \(H, W\)"),
        (None, TypeError, "bits_map must be a tensor or array of numbers"),
        ({"bits": 1}, TypeError, "bits_map must be a tensor or array of numbers"),
    ],
)
def test_bits_map_refuses_what_it_cannot_draw(bits_map, error, message):
    with pytest.raises(error, match=message):
        plots.plot_bits_map(bits_map)
    assert plt.get_fignums() == []


def test_bits_map_of_a_list_titles_its_mean():
    ax = plots.plot_bits_map([[1, 2], [3, 4]])
    assert "mean 2.50" in ax.get_title()


# ---------------------------------------------------------------- learning_curves


def test_learning_curves_of_a_history_dict_match_those_of_the_history():
    # A study point keeps its history as History.as_dict(): the same curves either way.
    history = _history()
    by_object = plots.learning_curves(history)
    by_dict = plots.learning_curves(history.as_dict())
    assert [list(line.get_ydata()) for line in by_dict.lines] == [
        list(line.get_ydata()) for line in by_object.lines
    ]
    assert list(by_dict.lines[0].get_ydata()) == [1.0, 0.5]


@pytest.mark.parametrize(
    "history, error, message",
    [
        (None, TypeError, "history must be the History that deepimaging.train.fit returns.*got NoneType"),
        ([1.0, 0.5], TypeError, "history must be the History .*got list"),
        ({"loss": [1.0]}, ValueError, r"history must be the History .*got a dict with keys \['loss'\]"),
        (History(), ValueError, "history is empty"),
        ({"train_loss": [], "train_accuracy": []}, ValueError, "history is empty"),
    ],
)
def test_learning_curves_refuse_what_is_not_a_history(history, error, message):
    with pytest.raises(error, match=message):
        plots.learning_curves(history)
    assert plt.get_fignums() == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train_loss": [1.0, float("nan")]}, r"history.train_loss is nan at epoch 2: the training diverged"),
        ({"val_loss": [float("inf"), 0.7]}, "history.val_loss is inf at epoch 1"),
        ({"train_accuracy": [0.6]}, r"history.train_accuracy must hold one number per epoch \(2"),
        ({"val_accuracy": [0.5, 0.6, 0.7]}, "history.val_accuracy must hold one number per epoch"),
        ({"train_loss": ["a", "b"]}, "history.train_loss must be a tensor or array of numbers"),
    ],
)
def test_learning_curves_refuse_curves_that_cannot_be_drawn(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        plots.learning_curves(_history(**changes))
    assert plt.get_fignums() == []


# ---------------------------------------------------------------- image_grid


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"images": None}, TypeError, "images must be a tensor or array of numbers"),
        ({"images": torch.rand(2, 5, 4, 4)}, ValueError, "images must have 1 or 3 channels.*got 5"),
        ({"images": torch.rand(MAX_PANELS + 1, 1, 2, 2)}, ValueError, f"{MAX_PANELS + 1} panels"),
        (
            {"labels": [0, 7], "classes": ["a", "b"]},
            ValueError,
            r"labels must hold class indices in range\(2\)",
        ),
        ({"labels": [0]}, ValueError, "labels must hold one label per image; got 1 for 2 images"),
        ({"ncols": 0}, ValueError, r"ncols must be in \[1, inf\]; got 0"),
        ({"size": float("inf")}, ValueError, "size must be a finite number"),
    ],
)
def test_image_grid_refuses_bad_input_before_drawing(kwargs, error, message):
    kwargs = {"images": torch.rand(2, 3, 4, 4), **kwargs}
    with pytest.raises(error, match=message):
        plots.image_grid(**kwargs)
    assert plt.get_fignums() == []


def test_image_grid_titles_each_image_with_its_class():
    fig = plots.image_grid(np.zeros((2, 1, 4, 4)), labels=np.array([1, 0]), classes=["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["b", "a"]


# ---------------------------------------------------------------- the other figures: the same classes


def test_figures_refuse_more_panels_than_they_can_show_before_drawing():
    image = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match=f"maps would make 301 panels, more than the {MAX_PANELS}"):
        plots.attribution_figure(image, {str(i): torch.rand(8, 8) for i in range(300)})
    with pytest.raises(ValueError, match="images x layers would make 600 panels"):
        plots.physics_gallery(torch.rand(300, 3, 4, 4), {"same": torch.nn.Identity()})
    with pytest.raises(ValueError, match="images x layers is empty"):
        plots.physics_gallery(torch.zeros(0, 3, 4, 4), {"same": torch.nn.Identity()})
    with pytest.raises(ValueError, match="queries x neighbors is empty"):
        plots.neighbor_grid(
            torch.zeros(0, 3, 4, 4), torch.rand(4, 3, 4, 4), {"x": torch.zeros(0, 2, dtype=torch.long)}
        )
    assert plt.get_fignums() == []


def test_detection_boxes_refuses_more_boxes_than_a_picture_can_show():
    from deepimaging.plots.attribution import MAX_BOXES

    many = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(MAX_BOXES + 1, 4)
    with pytest.raises(ValueError, match=f"boxes holds {MAX_BOXES + 1} boxes, more than the {MAX_BOXES}"):
        plots.detection_boxes(torch.rand(3, 8, 8), boxes=many)


def test_neighbor_grid_refuses_indices_outside_the_database():
    with pytest.raises(
        ValueError, match=r"neighbors\['pixels'\] must hold indices into the database, in \[0, 3\]"
    ):
        plots.neighbor_grid(
            torch.rand(2, 3, 4, 4), torch.rand(4, 3, 4, 4), {"pixels": torch.tensor([[0, 9], [1, 2]])}
        )
    assert plt.get_fignums() == []


def test_confusion_matrix_figure_refuses_a_matrix_too_large_to_read_or_empty():
    from deepimaging.plots.metrics import MAX_DRAWN_CLASSES

    k = MAX_DRAWN_CLASSES + 1
    with pytest.raises(ValueError, match=f"{k} classes is too large to draw"):
        plots.plot_confusion_matrix(np.eye(k, dtype=int))
    with pytest.raises(ValueError, match="empty"):
        plots.plot_confusion_matrix(np.zeros((0, 0)))
    assert plt.get_fignums() == []


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_threshold_tradeoff_refuses_a_non_finite_threshold(threshold):
    with pytest.raises(ValueError, match="threshold must be"):
        plots.plot_threshold_tradeoff([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6], threshold=threshold)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"embedding": torch.full((3, 2), float("nan"))}, ValueError, "embedding must be finite"),
        ({"embedding": torch.zeros(0, 2)}, ValueError, "embedding is empty"),
        (
            {"labels": [0, 1, 5], "classes": ["a", "b"]},
            ValueError,
            r"labels must hold class indices in range\(2\)",
        ),
        ({"highlight": [0, 99]}, ValueError, r"highlight must be in \[0, 2\]; got 99"),
    ],
)
def test_tsne_scatter_refuses_what_it_cannot_draw(kwargs, error, message):
    kwargs = {"embedding": torch.rand(3, 2), **kwargs}
    with pytest.raises(error, match=message):
        plots.tsne_scatter(**kwargs)
    assert plt.get_fignums() == []


def test_figure_to_png_checks_the_figure_and_the_resolution():
    from deepimaging.widgets import figure_to_png

    with pytest.raises(TypeError, match="fig must be a matplotlib Figure .*got NoneType"):
        figure_to_png(None)
    fig = plt.figure(figsize=(1, 1))
    with pytest.raises(ValueError, match=r"dpi must be in \[10, 600\]; got 1000000"):
        figure_to_png(fig, dpi=10**6)
    assert figure_to_png(fig, dpi=20).startswith(b"\x89PNG")  # PNG's signature


@pytest.mark.parametrize(
    "name", ["plot_attribution_across", "plot_filters_across", "plot_neighbor_agreement"]
)
def test_figures_across_a_study_refuse_what_is_not_a_study_result(name):
    with pytest.raises(TypeError, match="results must be a StudyResults .*got dict"):
        getattr(plots, name)({"config": {}})
    assert plt.get_fignums() == []


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda v: plots.attribution_overlay(torch.rand(3, 4, 4), v), "attribution"),
        (lambda v: plots.heatmap_overlay(torch.rand(3, 16, 16), v, 8, 4), "heatmap"),
    ],
)
@pytest.mark.parametrize("kind", ["nan", "inf", "empty", "text"])
def test_overlays_refuse_maps_they_cannot_draw(call, name, kind):
    value = {
        "nan": torch.full((4, 4) if name == "attribution" else (3, 3), float("nan")),
        "inf": torch.full((4, 4) if name == "attribution" else (3, 3), float("inf")),
        "empty": torch.zeros(0, 3),
        "text": np.array([["a", "b"], ["c", "d"]]),
    }[kind]
    with pytest.raises((ValueError, TypeError), match=name):
        call(value)
    assert plt.get_fignums() == []


@pytest.mark.parametrize("size", [float("inf"), float("nan"), 0.0, -1.0])
@pytest.mark.parametrize(
    "call",
    [
        lambda size: plots.image_grid(torch.rand(2, 3, 4, 4), size=size),
        lambda size: plots.attribution_figure(torch.rand(3, 4, 4), {"map": torch.rand(4, 4)}, size=size),
        lambda size: plots.physics_gallery(torch.rand(2, 3, 4, 4), {"same": torch.nn.Identity()}, size=size),
    ],
    ids=["image_grid", "attribution_figure", "physics_gallery"],
)
def test_grid_figures_name_a_panel_size_that_is_not_a_finite_positive_number(call, size):
    with pytest.raises(ValueError, match="size must be"):
        call(size)
    assert plt.get_fignums() == []

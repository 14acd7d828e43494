"""Explorers over deepimaging.interpret.attribution: the occlusion explorer."""

from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .._checks import check_images, check_int, check_number
from .._util import softmax_in_batches
from ..data.dataset import ImageDataset
from ..interpret import occlusion_map
from ..plots import imshow
from ..plots.attribution import attribution_overlay
from ._base import Explorer, figure_to_png

__all__ = ["OcclusionExplorer"]


class OcclusionExplorer(Explorer):
    """Pick an image, a patch size and a stride; see where greying out hurts the prediction.

    The class probabilities of every image are computed once in ``__init__``,
    and the occlusion map of the first image. Each further map is computed
    when its (image, patch size, stride) is first shown and kept, so moving
    back to a setting only redraws.

    Parameters
    ----------
    model : nn.Module
        The trained classifier (run in eval mode, its mode restored).
    data : ImageDataset or torch.Tensor
        The images to choose from, (N, C, H, W) in [0, 1]; a dataset also
        gives the true labels and class names.
    classes : list of str, optional
        Class names when ``data`` is a tensor.
    patch_sizes : sequence of int
        Patch sizes offered (each at most the image size).
    baselines : float
        The grey value of the patch.
    batch_size : int
        Passed to :func:`deepimaging.interpret.occlusion_map`.

    Attributes
    ----------
    image_slider : ipywidgets.IntSlider
        Index of the image.
    patch_slider : ipywidgets.SelectionSlider
        Patch size in pixels.
    stride_slider : ipywidgets.IntSlider
        Stride in pixels, from 1 to the patch size (its maximum follows the patch).
    picture : ipywidgets.Image
        The image and its occlusion map (PNG).
    readout : ipywidgets.HTML
        Prediction, target and largest probability drop.
    """

    name = "occlusion"

    def __init__(
        self,
        model,
        data,
        *,
        classes=None,
        patch_sizes=(4, 8, 16),
        baselines: float = 0.5,
        batch_size: int = 32,
    ):
        if isinstance(data, ImageDataset):
            images, labels, classes = data.images, data.labels, data.classes
        else:
            images, labels = check_images(data, "data"), None
        if len(images) == 0:
            raise ValueError("data must hold at least one image")
        size = min(images.shape[-2:])
        if isinstance(patch_sizes, (str, bytes)) or not hasattr(patch_sizes, "__iter__"):
            raise TypeError(f"patch_sizes must be a list of window sizes in pixels; got {patch_sizes!r}")
        patch_sizes = sorted({check_int(p, "patch_sizes", 1, size) for p in patch_sizes})
        if not patch_sizes:
            raise ValueError(f"patch_sizes must offer at least one size in [1, {size}]; got none")
        check_number(baselines, "baselines", 0.0, 1.0)  # the grey an occluded patch is filled with
        check_int(batch_size, "batch_size", 1)
        self.model, self.images, self.labels = model, images, labels
        self.baselines, self.batch_size = baselines, batch_size
        self.probabilities = softmax_in_batches(model, images, batch_size=256)
        self.classes = (
            list(classes) if classes is not None else [str(k) for k in range(self.probabilities.shape[1])]
        )
        self.maps, self._png = {}, {}

        first_patch = patch_sizes[len(patch_sizes) // 2]
        self.image_slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        self.patch_slider = widgets.SelectionSlider(
            options=patch_sizes, value=first_patch, description="patch size"
        )
        self.stride_slider = widgets.IntSlider(
            value=max(1, first_patch // 2), min=1, max=first_patch, description="stride"
        )
        self.picture = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.image_slider.observe(self._redraw, names="value")
        self.patch_slider.observe(self._on_patch, names="value")
        self.stride_slider.observe(self._redraw, names="value")
        self._redraw()
        controls = widgets.HBox([self.image_slider, self.patch_slider, self.stride_slider])
        self._finish(widgets.VBox([controls, self.readout, self.picture]))

    @property
    def setting(self) -> tuple:
        """The current (image index, patch size, stride)."""
        return self.image_slider.value, self.patch_slider.value, self.stride_slider.value

    def occlusion(self, index: int, patch: int, stride: int) -> torch.Tensor:
        """The occlusion map (H, W) of image ``index`` for its predicted class; computed once, then kept."""
        key = (index, patch, stride)
        if key not in self.maps:
            self.maps[key] = occlusion_map(
                self.model,
                self.images[index],
                int(self.probabilities[index].argmax()),
                sliding_window_shapes=patch,
                strides=stride,
                baselines=self.baselines,
                batch_size=self.batch_size,
            )
        return self.maps[key]

    def _on_patch(self, change):
        # Strides beyond the patch would leave pixels uncovered; lowering max clamps the value,
        # which fires _redraw through the stride observer, so redraw here only if it did not change.
        stride = self.stride_slider.value
        self.stride_slider.max = change["new"]
        if self.stride_slider.value == stride:
            self._redraw()

    def _draw(self, index, patch, stride, axes):
        values = self.occlusion(index, patch, stride)
        probabilities = self.probabilities[index]
        predicted = int(probabilities.argmax())
        truth = "" if self.labels is None else f", true {self.classes[int(self.labels[index])]}"
        imshow(axes[0], self.images[index], title=f"image {index}{truth}")
        attribution_overlay(
            self.images[index],
            values,
            ax=axes[1],
            title=f"drop in p({self.classes[predicted]}), {patch}px patch, stride {stride}",
            symmetric=True,  # the same diverging scale for every image: 0 is white
        )
        return values, predicted

    def _redraw(self, change=None):
        index, patch, stride = self.setting
        if self.setting not in self._png:
            fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
            self._draw(index, patch, stride, axes)
            self._png[self.setting] = figure_to_png(fig)
        self.picture.value = self._png[self.setting]
        values = self.occlusion(index, patch, stride)
        probabilities = self.probabilities[index]
        predicted = int(probabilities.argmax())
        y, x = divmod(int(values.argmax()), values.shape[1])
        self.readout.value = (
            f"predicted <b>{html.escape(self.classes[predicted])}</b> "
            f"(p = {float(probabilities[predicted]):.3f}); largest drop {float(values.max()):.3f} "
            f"at (x={x}, y={y}); {patch}x{patch} patch, stride {stride}"
        )

    def static_figure(self):
        fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
        self._draw(*self.setting, axes)
        return fig

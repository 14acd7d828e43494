"""A tiny explorer that the browser harness is first tried on (and deliberately broken with).

It has the shape of the course explorers (a :class:`deepimaging.widgets.Explorer`
with a described slider and dropdown, an ``ipywidgets.Image`` and an
``ipywidgets.HTML`` readout) but computes nothing expensive, so a test of the
harness itself costs a second rather than a training run.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from deepimaging.widgets import Explorer, figure_to_png


def readout_text(level: float) -> str:
    """The readout the explorer shows for ``level`` (the browser test computes it on its own)."""
    return f"level squared = {level * level:.2f}"


class FixtureExplorer(Explorer):
    """A grey patch whose brightness follows a slider; the readout shows the level squared.

    With ``broken=True`` the slider's observer raises before it redraws, which is the
    failure the browser suite must catch (the page still shows the widget, but
    nothing follows the slider and the kernel logs the exception).
    """

    name = "fixture"

    def __init__(self, level: float = 0.5, broken: bool = False):
        self.broken = broken
        self.slider = widgets.FloatSlider(value=level, min=0.0, max=1.0, step=0.1, description="level")
        self.colormap = widgets.Dropdown(options=["gray", "viridis", "magma"], description="colormap")
        self.image = widgets.Image(format="png", value=self._png(), layout=widgets.Layout(width="160px"))
        self.readout = widgets.HTML(readout_text(level))
        self.slider.observe(self._on_level, names="value")
        self.colormap.observe(self._on_colormap, names="value")
        self._finish(widgets.VBox([self.slider, self.colormap, self.image, self.readout]))

    def _figure(self):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.imshow(np.full((4, 4), self.slider.value), cmap=self.colormap.value, vmin=0, vmax=1)
        ax.set_title(f"level {self.slider.value:.1f}")
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
        return fig

    def _png(self) -> bytes:
        return figure_to_png(self._figure(), dpi=40)

    def _on_level(self, change):
        if self.broken:
            raise RuntimeError("deliberately broken observer (browser-harness fixture)")
        self.image.value = self._png()
        self.readout.value = readout_text(change["new"])

    def _on_colormap(self, change):
        self.image.value = self._png()

    def static_figure(self):
        return self._figure()

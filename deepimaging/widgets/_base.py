"""What every explorer shares: a widget, a static fallback, and how both are displayed."""

from __future__ import annotations

import base64
import io

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .._checks import check_int


class Explorer:
    """Base class of the interactive explorers.

    A subclass precomputes what its controls need in ``__init__``, builds
    ``self.widget`` (an ipywidgets container) and implements
    :meth:`static_figure`. Displaying an explorer in a notebook gives both: a
    front end that renders widgets (JupyterLab, Notebook 7, VS Code, Colab)
    shows the live widget; one that cannot (GitHub, nbconvert, nbval) shows the
    static figure saved beside it.

    For browser tests and styling, the root widget carries the CSS classes
    ``deepimaging-explorer`` and ``deepimaging-<name>``.
    """

    name = "explorer"
    widget = None

    def _finish(self, widget):
        """Store the root widget and tag it with the explorer's CSS classes."""
        widget.add_class("deepimaging-explorer")
        widget.add_class(f"deepimaging-{self.name}")
        self.widget = widget
        return widget

    def static_figure(self):
        """A matplotlib Figure showing the explorer's initial state."""
        raise NotImplementedError

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        fig = self.static_figure()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        bundle["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        return bundle


def figure_to_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (for ``ipywidgets.Image``); closes the figure."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure (e.g. ax.figure); got {type(fig).__name__}")
    # A screen needs 50-200 dots per inch; 10**6 would ask for terabytes of pixels.
    check_int(dpi, "dpi", 10, 600)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()

"""What the chapters draw with: interactive explorers that degrade to a still figure.

    explorer(draw, layer=(0, 3), token=(0, 20))

shows sliders (ipywidgets) that redraw `draw(layer=..., token=...)` in a live notebook
(Jupyter, Colab). The rendered book runs no kernel, so its page shows the figure drawn
at the controls' initial values instead (a slider starts in its middle, a dropdown at
its first choice): the explorer's output carries both, and the book's configuration
(_config.yml) tells it to skip the widget.
"""

import io

import ipywidgets
import matplotlib.pyplot as plt
from IPython.display import display


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


class Explorer:
    """Controls that redraw a figure. `draw(**values)` returns a matplotlib Figure;
    `controls` are ipywidgets.interact abbreviations: (low, high) or (low, high, step)
    for a slider, a list for a dropdown, a bool for a checkbox, or a widget."""

    def __init__(self, draw, **controls):
        self.draw, self.still = draw, None
        self.widget = ipywidgets.interactive(self._show, **controls)  # draws the first view

    def _show(self, **values):
        figure = self.draw(**values)
        if self.still is None:
            self.still = png_bytes(figure)  # the figure at the controls' initial values
        display(figure)
        plt.close(figure)  # shown once: not again by the inline backend at the cell's end

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["image/png"] = self.still
        return bundle


def explorer(draw, **controls) -> Explorer:
    """An Explorer: the last expression of a cell, it shows itself."""
    return Explorer(draw, **controls)

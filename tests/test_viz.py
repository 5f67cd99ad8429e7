"""The explorers: a widget for a live notebook, a still figure for the rendered book."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from minids.viz import explorer  # noqa: E402

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_an_explorer_carries_the_widget_and_the_figure_at_the_initial_values():
    drawn = []

    def draw(layer, kind):
        drawn.append((layer, kind))
        figure, axes = plt.subplots(figsize=(2, 1))
        axes.set_title(f"{kind} {layer}")
        return figure

    view = explorer(draw, layer=(0, 3), kind=["keys", "values"])
    bundle = view._repr_mimebundle_()
    assert WIDGET in bundle
    assert bundle["image/png"].startswith(b"\x89PNG")
    assert drawn == [(1, "keys")]  # once, at the middle of the slider and the first choice

    view.widget.children[0].value = 3  # a reader moves the slider: draw runs again
    assert drawn[-1] == (3, "keys")
    assert view._repr_mimebundle_()["image/png"] == bundle["image/png"]  # the still stays
    assert plt.get_fignums() == []  # every figure was closed after it was shown

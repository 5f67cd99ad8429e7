"""The conceptual diagrams: each one fits its figure, no two labels collide, and the same
call draws the same picture."""

import io

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from minids import diagrams
from minids.config import ModelConfig

DIAGRAMS = ["pipeline", "bpe_and_packing", "transformer_block", "mla_dataflow",
            "deepseekmoe_layer", "bias_balancing_loop", "mtp_across_positions",
            "pretraining_step", "v3_recipe", "fp8_gemm", "rope_clocks", "context_extension",
            "disaggregated_serving", "cache_layouts", "sft_masks", "grpo_step", "rejection_sampling",
            "hf_ecosystem"]


def labels(figure: Figure):
    """Every non-empty text of the figure with its box in pixels."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays out the legends
    renderer = canvas.get_renderer()
    texts = [t for t in dict.fromkeys(figure.findobj(Text))
             if t.get_visible() and t.get_text().strip()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts]


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50, metadata={"Software": None})
    return buffer.getvalue()


@pytest.mark.parametrize("name", DIAGRAMS)
def test_every_label_lies_inside_its_figure_and_none_collide(name):
    figure = getattr(diagrams, name)()
    assert isinstance(figure, Figure)
    assert figure.get_size_inches()[0] <= 9
    bounds = figure.bbox
    boxes = labels(figure)
    assert len(boxes) >= 5
    for text, box in boxes:
        assert (box.x0 >= bounds.x0 - 1 and box.x1 <= bounds.x1 + 1
                and box.y0 >= bounds.y0 - 1 and box.y1 <= bounds.y1 + 1), text
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            overlap = (min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0),
                       min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0))
            assert min(overlap) <= 1, f"{a!r} overlaps {b!r}"


@pytest.mark.parametrize("name", DIAGRAMS)
def test_the_same_call_draws_the_same_picture(name):
    assert png(getattr(diagrams, name)()) == png(getattr(diagrams, name)())


def test_the_labels_are_read_from_the_config():
    wide = ModelConfig.preset("book", kv_lora_rank=96)
    assert any("96" in text for text, _ in labels(diagrams.mla_dataflow(wide)))
    assert not any("96" in text for text, _ in labels(diagrams.mla_dataflow()))


def test_a_diagram_shows_itself_once_as_a_png_in_a_notebook():
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(diagrams.mla_dataflow())
    assert data["image/png"][:4] == b"\x89PNG"

"""The book's conceptual diagrams, drawn by code: boxes, arrows and labels, no data.

Each function returns a new matplotlib Figure that draws one idea of a chapter. In a
notebook cell

    from minids.diagrams import mla_dataflow
    mla_dataflow()

shows it (a Figure displays itself as the last expression of a cell). The figures are not
registered with pyplot, so a cell never shows one twice and nothing needs closing;
`figure.savefig(path)` writes one to a file.

The sizes the labels print are read from a ModelConfig (the `book` preset unless one is
passed), so a label cannot go stale when a preset changes; the routing example of
`deepseekmoe_layer` is computed by minids' own Router.

One palette for all diagrams (a legend says what a colour means where it carries
meaning): activations and tokens grey, learned weights blue, what the decoding cache keeps
orange, what only selects (the routing bias) purple, losses and gradients red, operations
without a weight matrix white.

Coordinates: each diagram draws on one axes that spans the figure, in inches from its
lower-left corner, so a box of width 1 is one inch wide at the figure's own size.
"""

import inspect
import io
import textwrap
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch

from minids.config import ModelConfig

FONT, SMALL, TITLE = 10, 9, 12  # points: box labels, annotations, titles
INK, MUTED = "#1f2933", "#6b7280"
ROLES = {  # role: (fill, edge)
    "data": ("#eceff3", "#5f6b7a"),
    "weights": ("#d8e6fa", "#2760ad"),
    "cached": ("#fde0bd", "#c05a0b"),
    "selection": ("#ecdcf6", "#7b349f"),
    "loss": ("#f9d9d9", "#b42323"),
    "op": ("#ffffff", "#4b5563"),
}
ROLE_NAMES = {
    "data": "activations, tokens",
    "weights": "learned weights",
    "cached": "kept in the KV cache",
    "selection": "selection only (no gradient)",
    "loss": "loss, gradient",
    "op": "operation",
}


# --------------------------------------------------------------------------------------
# Drawing helpers: a canvas in inches, boxes, arrows, labels, a legend.
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Box:
    """A drawn box: centre (x, y) and size (w, h), in inches."""
    x: float
    y: float
    w: float
    h: float

    @property
    def left(self):
        return (self.x - self.w / 2, self.y)

    @property
    def right(self):
        return (self.x + self.w / 2, self.y)

    @property
    def top(self):
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self):
        return (self.x, self.y - self.h / 2)

    def at(self, fx: float, fy: float):
        """The point at fractions (fx, fy) of the box: (0, 0) is its lower-left corner."""
        return (self.x + (fx - 0.5) * self.w, self.y + (fy - 0.5) * self.h)


def _config(config):
    return ModelConfig.preset("book") if config is None else config


class Diagram(Figure):
    """A Figure that shows itself as a PNG in a notebook, where IPython's matplotlib
    display hooks do not see it (it is not registered with pyplot)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def _canvas(width: float, height: float, title: str, bottom: float = 0.0):
    """A figure of width x height inches whose one axes counts inches from (0, bottom)."""
    fig = Diagram(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(bottom, bottom + height)
    ax.axis("off")
    fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=TITLE, fontweight="bold",
                 color=INK)
    return fig, ax


def _text(ax, x, y, s, size=SMALL, color=INK, **kwargs):
    kwargs = {"ha": "center", "va": "center", **kwargs}
    return ax.text(x, y, s, fontsize=size, color=color, zorder=4, **kwargs)


def _box(ax, x, y, w, h, text="", role="op", size=FONT, weight="normal", dashed=False,
         faded=False, lw=1.2, family=None, text_color=INK) -> _Box:
    """A rounded box centred at (x, y) in the colours of `role`, with a centred label."""
    fill, edge = ROLES[role]
    ax.add_patch(FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={min(0.08, h / 4)}",
        facecolor=fill, edgecolor=edge, linewidth=lw, linestyle="--" if dashed else "-",
        alpha=0.4 if faded else 1.0, zorder=2,
    ))
    if text:
        _text(ax, x, y, text, size=size, weight=weight, family=family,
              color=MUTED if faded else text_color, linespacing=1.25)
    return _Box(x, y, w, h)


def _region(ax, x0, y0, x1, y1, role="data", dashed=False):
    """A pale background rectangle that groups boxes."""
    fill, edge = ROLES[role]
    ax.add_patch(FancyBboxPatch(
        (x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.1",
        facecolor=fill, edgecolor=edge, linewidth=1.0, alpha=0.35 if role != "op" else 1.0,
        linestyle="--" if dashed else "-", zorder=0,
    ))


def _arrow(ax, *points, color=INK, dashed=False, lw=1.2, rad=0.0, both=False):
    """A line through `points` with an arrowhead at the end (and the start, if both)."""
    style = "--" if dashed else "-"
    for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1]):
        ax.plot([x0, x1], [y0, y1], color=color, lw=lw, ls=style, zorder=1,
                solid_capstyle="butt")
    ax.add_patch(FancyArrowPatch(
        points[-2], points[-1], arrowstyle="<|-|>" if both else "-|>", mutation_scale=11,
        color=color, lw=lw, linestyle=style, shrinkA=0, shrinkB=0, zorder=1,
        connectionstyle=f"arc3,rad={rad}",
    ))


def _plus(ax, x, y, r=0.13):
    """The residual addition: a circle with a plus, drawn (not typed)."""
    ax.add_patch(Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=2))
    ax.plot([x - r * 0.6, x + r * 0.6], [y, y], color=INK, lw=1.2, zorder=3)
    ax.plot([x, x], [y - r * 0.6, y + r * 0.6], color=INK, lw=1.2, zorder=3)


def _legend(ax, roles, x, y, ncol=None):
    """A one-row legend of role colours whose lower-left corner is at (x, y) inches."""
    handles = [Patch(facecolor=ROLES[r][0], edgecolor=ROLES[r][1], label=ROLE_NAMES[r])
               for r in roles]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(x, y),
              bbox_transform=ax.transData, ncol=ncol or len(roles), frameon=False,
              fontsize=SMALL, handlelength=1.4, columnspacing=1.2, borderaxespad=0,
              borderpad=0, handletextpad=0.5)


# --------------------------------------------------------------------------------------
# 00: the pipeline and the map of the book.
# --------------------------------------------------------------------------------------

BOOK_PARTS = (
    ("Part I", "the architecture", "", (
        "01 Tokens\nand data", "02 Baseline\ntransformer", "03 Latent\nattention (MLA)",
        "04 DeepSeek\nMoE", "05 Load\nbalancing", "06 Multi-token\nprediction")),
    ("Part II", "training, serving", "how V3 trains it\nat scale and serves it", (
        "07 Pretraining\nrecipe", "08 FP8\ntraining", "09 YaRN long\ncontext",
        "10 Inference")),
    ("Part III", "post-training", "from a text model\nto an assistant", (
        "11 Supervised\nfine-tuning", "12 RL with\nGRPO", "13 Distilling\nreasoning")),
    ("Beyond V3", "scale, V3.2", "many processes; V3.2's\nsparse attention", (
        "14 Scaling\nout", "15 Sparse\nattention")),
)


def pipeline(config=None) -> Figure:
    """Chapter 00: the stages that make the shipped models, and the map of the book."""
    c = _config(config)
    fig, ax = _canvas(9, 5.45, "The minids pipeline, and the chapters that teach each part")
    stages = (
        ("corpus", "stories, arithmetic,\ncode, passkeys", "data/corpus", "chapter 01"),
        ("tokenizer", f"byte-level BPE,\n{c.vocab_size} tokens", "tokenizer.json",
         "chapter 01"),
        ("pretrain", "next token + MTP,\nthe book preset", "data/book", "chapters 02–10, 14"),
        ("SFT", "chat template,\nanswer-only loss", "data/sft", "chapters 11, 13"),
        ("GRPO", "reward: the right\nfinal answer", "data/grpo", "chapter 12"),
    )
    pitch, w, y = 1.8, 1.55, 4.2
    for i, (head, body, path, chapters) in enumerate(stages):
        x = 0.85 + i * pitch
        box = _box(ax, x, y, w, 1.2, role="data")
        _text(ax, x, y + 0.4, head, size=FONT, weight="bold")
        _text(ax, x, y + 0.02, body)
        _text(ax, x, y - 0.4, path, family="monospace")
        _text(ax, x, y - 0.8, chapters, color=MUTED)
        if i:
            _arrow(ax, (x - pitch + w / 2, y), box.left)

    _text(ax, 4.5, 2.95, "The map of the book", size=FONT, weight="bold")
    row_top, row_pitch, chip_w, chip_pitch, x0 = 2.45, 0.64, 1.12, 1.2, 1.85
    for r, (part, topic, note, chapters) in enumerate(BOOK_PARTS):
        y_row = row_top - r * row_pitch
        _text(ax, 0.08, y_row + 0.11, part, size=FONT, weight="bold", ha="left")
        _text(ax, 0.08, y_row - 0.13, topic, color=MUTED, ha="left")
        for j, chapter in enumerate(chapters):
            _box(ax, x0 + j * chip_pitch, y_row, chip_w, 0.52, chapter, size=SMALL)
        if note:
            _text(ax, x0 + len(chapters) * chip_pitch - 0.4, y_row, note, color=MUTED,
                  ha="left")
    return fig


# --------------------------------------------------------------------------------------
# 01: byte-pair encoding and packing.
# --------------------------------------------------------------------------------------

BPE_TEXT = "low lower lowest"


def _bpe_steps(text: str, merges: int):
    """Toy byte-pair encoding, as the book's tokenizer does it: the text is split into
    words that keep their leading space, then the most frequent adjacent pair (the first
    seen, on a tie) is merged, `merges` times. Returns [(pair or None, words)]."""
    words = [list(piece) for piece in text.replace(" ", "\0 ").split("\0")]
    steps = [(None, [list(w) for w in words])]
    for _ in range(merges):
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        pair = max(counts, key=counts.get)  # dicts keep insertion order: first seen wins ties
        merged = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == pair:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged.append(out)
        words = merged
        steps.append((pair, [list(w) for w in words]))
    return steps


def _book_seq_len() -> int:
    """The training row length of the book's data (`python -m minids data`)."""
    from minids.data import prepare

    return inspect.signature(prepare).parameters["seq_len"].default


def bpe_and_packing(merges: int = 4, drawn_seq_len: int = 10) -> Figure:
    """Chapter 01: a worked BPE example, and documents packed into training rows."""
    from minids.data import rows_from_stream

    fig, ax = _canvas(9, 6.4, "Tokens: byte-pair merges, then documents packed into rows")
    space = "␣"
    _text(ax, 0.1, 5.9, "1. BPE: merge the most frequent adjacent pair, again and again",
          size=FONT, weight="bold", ha="left")
    top, pitch = 5.45, 0.44
    for r, (pair, words) in enumerate(_bpe_steps(BPE_TEXT, merges)):
        y = top - r * pitch
        n_tokens = sum(map(len, words))
        if pair is None:
            label = f"bytes: {n_tokens} tokens"
        else:
            a, b = (p.replace(" ", space) for p in pair)
            label = f"merge {a} + {b}: {n_tokens} tokens"
        _text(ax, 2.55, y, label, ha="right", family="monospace")
        x = 2.75
        for token in (t for w in words for t in w):
            new = pair is not None and token == pair[0] + pair[1]
            width = 0.25 * len(token)
            _box(ax, x + width / 2, y, width - 0.04, 0.34, token.replace(" ", space),
                 role="weights" if new else "data", family="monospace", lw=1.0)
            x += width
    _text(ax, 7.0, top - pitch * merges / 2,
          f"each merge adds a\nvocabulary entry (blue);\nthe book's tokenizer\nlearns "
          f"merges on its corpus;\n{space} is the space, kept\nat the front of a word",
          ha="left", color=MUTED)

    _text(ax, 0.1, 3.15, "2. Packing: <|bos|> doc <|eos|>, one stream, cut into rows of "
          "seq_len + 1", size=FONT, weight="bold", ha="left")
    doc_lengths = (6, 11, 3, 7)
    doc_roles = ("weights", "cached", "selection", "loss")
    stream, roles = [], []
    for d, (n, role) in enumerate(zip(doc_lengths, doc_roles)):
        stream += ["B"] + [str(d + 1)] * n + ["E"]
        roles += [None] + [role] * n + [None]
    rows = rows_from_stream(torch.arange(len(stream)), drawn_seq_len)  # stream positions
    w, x0, y_stream = min(0.24, 8.3 / len(stream)), 0.6, 2.65

    def cell(i, y, faded=False):
        special = roles[i] is None
        _box(ax, x0 + i * w + w / 2, y, w - 0.03, 0.3, stream[i], role=roles[i] or "op",
             family="monospace", size=SMALL, faded=faded, lw=1.6 if special else 0.8,
             weight="bold" if special else "normal")

    _text(ax, x0 - 0.08, y_stream, "stream", ha="right", color=MUTED)
    for i in range(len(stream)):
        cell(i, y_stream)
    for r, row in enumerate(rows.tolist()):
        y = y_stream - 0.55 - r * 0.45
        _text(ax, x0 + row[0] * w - 0.08, y, f"row {r}", ha="right", color=MUTED)
        for i in row:
            cell(i, y)
    used = rows[-1, -1].item() + 1
    for i in range(used, len(stream)):
        cell(i, y, faded=True)
    if used < len(stream):
        _text(ax, x0 + (used + len(stream)) * w / 2, y - 0.3, "tail: dropped", color=MUTED)
    _text(ax, 0.1, 0.1,
          f"B = <|bos|>, E = <|eos|>; the digits number the documents. A row holds seq_len + 1 "
          f"tokens (the book: {_book_seq_len()} + 1,\nhere {drawn_seq_len} + 1): inputs are "
          "row[:-1], targets row[1:], so consecutive rows share one token.\nDocuments run "
          "across rows, and attention is not masked between them.",
          ha="left", va="bottom", linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------
# 02: the pre-norm transformer block.
# --------------------------------------------------------------------------------------

def transformer_block(config=None) -> Figure:
    """Chapter 02: the model around its blocks, and one pre-norm block opened up."""
    c = _config(config)
    d, V, L = c.hidden_size, c.vocab_size, c.num_hidden_layers
    fig, ax = _canvas(9, 5.2, "A pre-norm transformer: the model, and one block opened up")
    y, h = 4.25, 0.72
    specs = (
        ("token ids\n(B, T)", 1.0, "data"),
        (f"embedding\n{V} × {d}", 1.15, "weights"),
        (f"block × {L}", 1.15, "weights"),
        ("final\nRMSNorm", 1.0, "op"),
        (f"output head\n{d} × {V}", 1.15, "weights"),
        (f"logits\n(B, T, {V})", 1.1, "data"),
    )
    boxes, x = [], 0.1
    for i, (text, w, role) in enumerate(specs):
        if i == 2:  # a stack of L blocks
            for shift in (0.1, 0.05):
                _box(ax, x + w / 2 + shift, y + shift, w, h, role=role)
        boxes.append(_box(ax, x + w / 2, y, w, h, text, role=role))
        x += w + 0.42
    for a, b in zip(boxes, boxes[1:]):
        _arrow(ax, a.right, b.left)
    block = boxes[2]

    x0, x1, y0, y1 = 0.25, 8.75, 0.62, 3.45
    _region(ax, x0, y0, x1, y1, role="op", dashed=True)
    for corner, target in ((block.at(0, 0), (x0, y1)), (block.at(1, 0), (x1, y1))):
        ax.plot([corner[0], target[0]], [corner[1], target[1]], color=MUTED, lw=0.8, ls=":",
                zorder=0)
    _text(ax, 4.5, 3.2, "one block: each branch reads a normalised copy of the residual "
          f"stream $x$ ({d} numbers per token)\nand adds its output back", color=MUTED)

    y_res, y_branch, r = 1.35, 2.5, 0.13
    _text(ax, 0.55, y_res, "$x$", size=FONT + 1)
    _text(ax, 8.5, y_res, "$x'$", size=FONT + 1)
    branches = (  # where the branch leaves the stream, its main box, the plus it adds into
        (0.95, 3.1, 1.8, "causal self-attention\n"
         f"{c.num_attention_heads} heads, RoPE on $q$, $k$", 4.35),
        (4.6, 6.78, 1.95, f"SwiGLU FFN, width {c.intermediate_size}\n"
         "$W_2(\\mathrm{silu}(W_1x)\\odot W_3x)$", 8.1),
    )
    stream = [0.72]
    for start, x_main, w, label, x_plus in branches:
        norm = _box(ax, start + 0.55, y_branch, 0.85, 0.5, "RMSNorm")
        main = _box(ax, x_main, y_branch, w, 0.72, label, role="weights")
        _arrow(ax, (start, y_res), (start, y_branch), norm.left)
        _arrow(ax, norm.right, main.left)
        _arrow(ax, main.right, (x_plus, y_branch), (x_plus, y_res + r))
        _plus(ax, x_plus, y_res, r)
        stream += [x_plus - r, x_plus + r]
    stream.append(8.35)
    for xa, xb in zip(stream[::2], stream[1::2]):
        _arrow(ax, (xa, y_res), (xb, y_res))
    _text(ax, 2.6, 0.95, "$x \\leftarrow x + \\mathrm{Attention}(\\mathrm{RMSNorm}(x))$")
    _text(ax, 6.3, 0.95, "$x \\leftarrow x + \\mathrm{FFN}(\\mathrm{RMSNorm}(x))$")
    _legend(ax, ("data", "weights", "op"), 0.25, 0.1)
    return fig


# --------------------------------------------------------------------------------------
# 03: Multi-head Latent Attention.
# --------------------------------------------------------------------------------------

def mla_dataflow(config=None) -> Figure:
    """Chapter 03: MLA's projections, what its cache keeps, and where absorption folds
    W^UK and W^UV away at decode time."""
    c = _config(config)
    if c.q_lora_rank is None:
        raise ValueError("mla_dataflow draws the compressed query: q_lora_rank must be set")
    d, dcq, dc, dr = c.hidden_size, c.q_lora_rank, c.kv_lora_rank, c.qk_rope_head_dim
    nh, dh, dv = c.num_attention_heads, c.qk_nope_head_dim, c.v_head_dim
    fig, ax = _canvas(9, 6.3, "Multi-head Latent Attention: compress, cache the latent, "
                      "expand per head")
    xs = dict(h=0.45, down=1.45, lat=2.55, norm=3.6, cache=4.65, up=5.65, head=6.6,
              attn=7.6, out=8.55)
    yq, yk, yv, yr = 4.75, 2.95, 2.2, 1.45  # rows: query, latent/key, value, rope key
    bh = 0.62
    h = _box(ax, xs["h"], 3.35, 0.7, bh, f"$h_t$\n$d$ = {d}", role="data")

    # Query: h -> W^DQ -> c^Q -> RMSNorm -> W^UQ -> [q^C ; q^R], RoPE on q^R.
    wdq = _box(ax, xs["down"], yq, 0.75, bh, "$W^{DQ}$", role="weights")
    cq = _box(ax, xs["lat"], yq, 0.9, bh, f"$c^Q_t$\n$d_c'$ = {dcq}", role="data")
    nq = _box(ax, xs["norm"], yq, 0.8, 0.45, "RMSNorm")
    wuq = _box(ax, xs["cache"], yq, 0.75, bh, "$W^{UQ}$", role="weights")
    qc = _box(ax, xs["head"], yq + 0.42, 0.85, bh, f"$q^C_{{t,h}}$\n{nh} × {dh}", role="data")
    rq = _box(ax, xs["up"], yq - 0.42, 0.6, 0.4, "RoPE", size=SMALL)
    qr = _box(ax, xs["head"], yq - 0.42, 0.85, bh, f"$q^R_{{t,h}}$\n{nh} × {dr}", role="data")
    _arrow(ax, h.top, (h.x, yq), wdq.left)
    for a, b in ((wdq, cq), (cq, nq), (nq, wuq), (rq, qr)):
        _arrow(ax, a.right, b.left)
    _arrow(ax, wuq.right, (5.2, wuq.y), (5.2, qc.y), qc.left)
    _arrow(ax, (5.2, wuq.y), (5.2, rq.y), rq.left)

    # Keys and values: h -> W^DKV -> [c^KV ; k~R]; RMSNorm and RoPE give the cached pair.
    ykv = (yk + yr) / 2
    wdkv = _box(ax, xs["down"], ykv, 0.75, bh, "$W^{DKV}$", role="weights")
    ckv = _box(ax, xs["lat"], yk, 0.9, bh, f"$c^{{KV}}_t$\n$d_c$ = {dc}", role="data")
    kr0 = _box(ax, xs["lat"], yr, 0.9, bh, f"$\\tilde k^R_t$\n$d_h^R$ = {dr}", role="data")
    nkv = _box(ax, xs["norm"], yk, 0.8, 0.45, "RMSNorm")
    rk = _box(ax, xs["norm"], yr, 0.8, 0.45, "RoPE")
    _region(ax, xs["cache"] - 0.52, yr - 0.5, xs["cache"] + 0.52, yk + 0.5, role="cached")
    chat = _box(ax, xs["cache"], yk, 0.8, bh, f"$\\hat c^{{KV}}_t$\n$d_c$ = {dc}",
                role="cached")
    kr = _box(ax, xs["cache"], yr, 0.8, bh, f"$k^R_t$\n$d_h^R$ = {dr}", role="cached")
    _arrow(ax, h.bottom, (h.x, ykv), wdkv.left)
    _arrow(ax, wdkv.right, (2.0, ykv), (2.0, yk), ckv.left)
    _arrow(ax, (2.0, ykv), (2.0, yr), kr0.left)
    for a, b in ((ckv, nkv), (nkv, chat), (kr0, rk), (rk, kr)):
        _arrow(ax, a.right, b.left)
    _text(ax, xs["cache"], yr - 0.85,
          f"the cache: $d_c + d_h^R$ = {dc} + {dr} = {dc + dr}\nnumbers per token per layer",
          size=FONT, color=ROLES["cached"][1], weight="bold")

    # Expansion per head, attention, output.
    wuk = _box(ax, xs["up"], yk, 0.75, bh, "$W^{UK}$", role="weights")
    wuv = _box(ax, xs["up"], yv, 0.75, bh, "$W^{UV}$", role="weights")
    kc = _box(ax, xs["head"], yk, 0.85, bh, f"$k^C_{{t,h}}$\n{nh} × {dh}", role="data")
    v = _box(ax, xs["head"], yv, 0.85, bh, f"$v_{{t,h}}$\n{nh} × {dv}", role="data")
    _arrow(ax, chat.right, wuk.left)
    _arrow(ax, (5.1, yk), (5.1, yv), wuv.left)
    _arrow(ax, wuk.right, kc.left)
    _arrow(ax, wuv.right, v.left)
    attn = _box(ax, xs["attn"], 3.3, 0.85, 3.4, role="op")
    for dy, text in ((0.85, "causal\nattention,\nper head $h$"), (0.12, "query"),
                     (-0.14, "$[q^C_{t,h} ; q^R_{t,h}]$"), (-0.5, "key"),
                     (-0.76, "$[k^C_{t,h} ; k^R_t]$")):
        _text(ax, attn.x, attn.y + dy, text)
    wo = _box(ax, xs["out"], 3.3, 0.62, bh, "$W^O$", role="weights")
    u = _box(ax, xs["out"], 4.4, 0.62, bh, "$u_t$\n" + f"{d}", role="data")
    left = xs["attn"] - 0.425
    for src in (qc, qr, kc, v):
        _arrow(ax, src.right, (left, src.y))
    _arrow(ax, kr.right, (left, kr.y))
    _text(ax, 6.45, yr + 0.19, "one $k^R_t$ for all heads", color=MUTED)
    _arrow(ax, attn.right, wo.left)
    _arrow(ax, wo.top, u.bottom)

    # Absorption: where decoding folds the up-projections away.
    absorbed = ROLES["weights"][1]
    _arrow(ax, wuk.top, (xs["cache"] + 0.2, yq - bh / 2), color=absorbed, dashed=True,
           rad=0.25)
    _text(ax, 5.05, 3.75, "absorbed decode, query side: "
          "$\\tilde q_{t,h} = W^{UK\\top}_h q^C_{t,h}$\n"
          "scores $\\tilde q_{t,h} \\cdot \\hat c_j$ read the cache directly",
          color=absorbed, ha="right")
    y_low = 0.95
    _arrow(ax, wuv.bottom, (wuv.x, y_low), (wo.x, y_low), wo.bottom, color=absorbed,
           dashed=True)
    _text(ax, 7.3, y_low - 0.32, "absorbed decode, output side:\n"
          "$o_{t,h} = W^{UV}_h\\,\\Sigma_j\\, p_{j}\\,\\hat c_j$ (or fold into $W^O$)",
          color=absorbed)
    _legend(ax, ("data", "weights", "cached", "op"), 0.15, 0.15)
    return fig


# --------------------------------------------------------------------------------------
# 04: the DeepSeekMoE layer and its router.
# --------------------------------------------------------------------------------------

def _routing_example(c: ModelConfig, seed: int):
    """Affinities, a bias, and what minids' Router selects from them, for one token."""
    from minids.moe import Router

    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(1, c.n_routed_experts, generator=generator) * 0.8 + 0.1
    router = Router(c)
    router.bias = (torch.rand(c.n_routed_experts, generator=generator) - 0.5) * 0.1
    chosen = set(router.select(scores)[0].tolist())
    biased = (scores[0] + router.bias).view(c.n_group, -1)
    group_scores = biased.topk(2, dim=-1).values.sum(dim=-1)
    kept = set(group_scores.topk(c.topk_group).indices.tolist())
    return chosen, group_scores.tolist(), kept


def deepseekmoe_layer(config=None, seed: int = 3) -> Figure:
    """Chapter 04: shared and routed experts; the bias picks experts, never weights them."""
    c = _config(config)
    E, G, K = c.n_routed_experts, c.n_group, c.num_experts_per_tok
    chosen, group_scores, kept = _routing_example(c, seed)
    fig, ax = _canvas(9, 6.5, "DeepSeekMoE: shared experts always on, routed experts "
                      "picked per token", bottom=-0.3)
    y_mid, y_top, y_res = 3.55, 4.8, 5.45
    u = _box(ax, 0.42, y_mid, 0.6, 0.55, "$u_t$", role="data")
    router = _box(ax, 1.8, y_mid, 1.5, 0.72, "router\n$s_i = \\sigma(u_t^\\top e_i)$",
                  role="weights")
    gate = _box(ax, 4.45, y_mid, 2.0, 0.72, "gate weights, unbiased $s$\n"
                f"$g_i = {c.routed_scaling_factor:g}\\,s_i \\,/\\, \\Sigma_{{j\\in S}}\\,s_j$",
                role="weights")
    routed = _box(ax, 6.75, y_mid, 1.85, 0.72, "routed output\n"
                  "$\\Sigma_{i\\in S}\\, g_i\\,\\mathrm{FFN}_i(u_t)$", role="weights")
    shared = _box(ax, 4.45, y_top, 2.9, 0.62,
                  f"shared expert{'s' if c.n_shared_experts > 1 else ''} "
                  f"× {c.n_shared_experts}, always on\n$\\mathrm{{FFN}}^{{(s)}}(u_t)$",
                  role="weights")
    plus, out_y = (8.15, y_mid), 2.55
    _arrow(ax, u.right, router.left)
    _arrow(ax, router.right, gate.left)
    _text(ax, 3.0, y_mid + 0.18, "$s$", color=INK, size=FONT)
    _arrow(ax, gate.right, routed.left)
    _arrow(ax, routed.right, (plus[0] - 0.13, y_mid))
    _arrow(ax, (0.72, y_top), shared.left)
    ax.plot([u.x + 0.15, u.x + 0.15, 0.72], [u.y + 0.275, y_top, y_top], color=INK, lw=1.2)
    _arrow(ax, shared.right, (plus[0], y_top), (plus[0], y_mid + 0.13))
    _arrow(ax, (u.x - 0.15, u.y + 0.275), (u.x - 0.15, y_res), (8.75, y_res), (8.75, y_mid),
           (plus[0] + 0.13, y_mid))
    _text(ax, 4.45, y_res + 0.17, "residual: $u_t$", color=MUTED)
    _plus(ax, *plus)
    out = _box(ax, plus[0], out_y, 0.6, 0.5, "$h'_t$", role="data")
    _arrow(ax, (plus[0], y_mid - 0.13), out.top)

    # Selection: s + b -> groups -> top-k, in purple: it decides S and nothing else.
    sel = ROLES["selection"][1]
    bias = _box(ax, 0.55, 1.55, 0.9, 0.62, "bias $b_i$\nno gradient", role="selection",
                size=SMALL)
    add = _box(ax, 1.8, 1.55, 0.9, 0.5, "$s + b$", role="selection")
    _arrow(ax, router.bottom, add.top)
    _arrow(ax, bias.right, add.left, color=sel)
    x0, x1, y0, y1 = 2.55, 7.6, 0.55, 2.6
    _region(ax, x0, y0, x1, y1, role="selection")
    _arrow(ax, add.right, (x0, add.y), color=sel)
    _text(ax, (x0 + x1) / 2, y1 - 0.22,
          f"keep the best {c.topk_group} of {G} groups (score: the sum of its top 2), "
          f"then the top {K}", color=sel)
    per_group = E // G
    pitch = (x1 - x0 - 0.2) / G
    cell = min(0.3, (pitch - 0.2) / per_group)
    for g in range(G):
        gx = x0 + 0.1 + g * pitch + pitch / 2
        is_kept = g in kept
        _region(ax, gx - pitch / 2 + 0.06, 1.0, gx + pitch / 2 - 0.06, 2.0,
                role="selection" if is_kept else "op", dashed=not is_kept)
        for j in range(per_group):
            e = g * per_group + j
            ex = gx + (j - (per_group - 1) / 2) * cell
            picked = e in chosen
            _box(ax, ex, 1.6, cell - 0.05, 0.42, str(e + 1) if cell >= 0.25 else "",
                 role="weights" if picked else "op", faded=not is_kept, size=SMALL,
                 lw=2.0 if picked else 0.8, weight="bold" if picked else "normal")
        _text(ax, gx, 1.18, f"group {g + 1}: {group_scores[g]:.2f}",
              color=INK if is_kept else MUTED)
        _text(ax, gx, 0.78, "kept" if is_kept else "dropped", color=sel if is_kept else MUTED)
    _arrow(ax, (gate.x, y1), gate.bottom, color=sel)
    _text(ax, gate.x - 0.1, (y1 + gate.bottom[1]) / 2, "which experts ($S$),\nnot how much",
          color=sel, ha="right")
    _arrow(ax, (routed.x, y1), routed.bottom, color=sel)
    _text(ax, routed.x + 0.1, (y1 + routed.bottom[1]) / 2, "run only the\nexperts in $S$",
          color=sel, ha="left")
    _text(ax, 0.1, 0.22, f"{E} routed experts in {G} groups; blue = the {K} chosen for "
          "this token. The bias moves the choice; the weights $g$ use the unbiased $s$.",
          ha="left", color=INK)
    _legend(ax, ("data", "weights", "selection", "op"), 0.15, -0.25)
    return fig


# --------------------------------------------------------------------------------------
# 05: auxiliary-loss-free balancing.
# --------------------------------------------------------------------------------------

def bias_balancing_loop(config=None) -> Figure:
    """Chapter 05: the bias update as a feedback loop, next to an auxiliary loss."""
    c = _config(config)
    E = c.n_routed_experts
    fig, ax = _canvas(9, 5.3, "Balancing experts: a bias feedback loop, or an auxiliary loss")
    sel = ROLES["selection"][1]
    _text(ax, 2.95, 4.75, "auxiliary-loss-free (DeepSeek-V3)", size=FONT, weight="bold")
    route = _box(ax, 1.2, 3.75, 2.0, 0.75, "route a batch:\ntop-$K$ of $s + b$",
                 role="selection")
    count = _box(ax, 4.65, 3.5, 2.3, 1.45, role="data")
    _text(ax, count.x, 3.98, "count the tokens of\neach expert: $c_i$")
    update = _box(ax, 1.2, 1.35, 2.0, 0.9, "update the bias\n"
                  "$b_i \\leftarrow b_i + \\gamma\\,\\mathrm{sign}(\\bar c - c_i)$\n"
                  f"$\\gamma$ = {c.bias_update_speed:g}", role="selection")
    compare = _box(ax, 4.65, 1.35, 2.3, 0.9, "compare with the mean\n"
                   "$\\bar c = N_{tok}\\,K_r\\,/\\,N_r$", role="op")
    _arrow(ax, (route.right[0], 3.75), (count.left[0], 3.75))
    _arrow(ax, count.bottom, compare.top)
    _arrow(ax, compare.left, update.right)
    _arrow(ax, update.top, route.bottom, color=sel)
    _text(ax, 1.1, 2.55, "next step", color=sel, ha="right")

    # The load chart inside "count": over the mean goes down, under the mean goes up.
    pattern = [3, 7, 5, 4, 9, 5, 2, 6, 5, 8, 3, 4, 6, 5, 7, 1]
    counts = [pattern[i % len(pattern)] for i in range(E)]
    mean = sum(counts) / E
    bx0, bw, by0, scale = count.x - 0.95, 1.8 / E, 2.9, 0.55 / max(counts)
    for i, n in enumerate(counts):
        fill = ROLES["data"][1] if n > mean else "#b9c1cc"
        ax.add_patch(FancyBboxPatch((bx0 + i * bw, by0), bw * 0.8, n * scale,
                                    boxstyle="square,pad=0", facecolor=fill,
                                    edgecolor="none", zorder=3))
    ax.plot([bx0 - 0.05, bx0 + 1.85], [by0 + mean * scale] * 2, color=INK, lw=1, ls="--",
            zorder=3)
    _text(ax, bx0 + 1.88, by0 + mean * scale, "$\\bar c$", ha="left", size=FONT)
    _text(ax, 2.95, 2.3, "dark: over the mean,\n$b_i$ goes down\nlight: under the mean,"
          "\n$b_i$ goes up", color=MUTED)
    _text(ax, 2.95, 0.55, "$b$ only changes which experts are picked:\nno loss term, no "
          "gradient, the gate weights never see it", color=sel)

    ax.plot([6.1, 6.1], [0.35, 4.9], color=MUTED, lw=0.8, ls=":")
    _text(ax, 7.6, 4.75, "auxiliary loss (the usual way)", size=FONT, weight="bold")
    steps = (
        ("route a batch:\ntop-$K$ of $s$", "op", 0.62),
        ("$\\mathcal{L} = \\mathcal{L}_{LM} + \\alpha\\,\\Sigma_i\\, f_i P_i$\n"
         "$f_i$: the load of expert $i$\n$P_i$: its mean affinity", "loss", 0.9),
        ("backward: the balance term's\ngradient reaches the router\nand the whole model",
         "loss", 0.82),
        ("it pulls against $\\mathcal{L}_{LM}$:\na large $\\alpha$ hurts quality,\na small "
         "$\\alpha$ balances weakly", "op", 0.82),
    )
    y, prev = 4.45, None
    for text, role, height in steps:
        box = _box(ax, 7.6, y - height / 2, 2.6, height, text, role=role, size=SMALL)
        if prev is not None:
            _arrow(ax, prev.bottom, box.top, color=ROLES["loss"][1] if role == "loss" else INK)
        prev, y = box, y - height - 0.28
    _legend(ax, ("selection", "loss", "op", "data"), 0.15, 0.08)
    return fig


# --------------------------------------------------------------------------------------
# 06: Multi-Token Prediction.
# --------------------------------------------------------------------------------------

def mtp_across_positions(config=None, positions: int = 4) -> Figure:
    """Chapter 06: the main model and MTP module 1 side by side, position by position."""
    c = _config(config)
    fig, ax = _canvas(9, 7.2, "Multi-Token Prediction: one more token ahead, through the "
                      "same head")
    pitch, cw, ch = 0.9, 0.6, 0.4
    left_x = [0.65 + i * pitch for i in range(positions)]
    right_x = [5.35 + i * pitch for i in range(positions)]
    lx0, lx1 = left_x[0] - 0.45, left_x[-1] + 0.45
    rx0, rx1 = right_x[0] - 0.45, right_x[-1] + 0.45
    y_in, y_emb, y_block, y_h, y_head, y_out, y_loss = 0.75, 1.45, 2.2, 3.1, 4.5, 5.2, 5.85
    y_norm, y_proj, y_trm = 2.1, 3.1, 3.8

    for x0, x1, name in ((lx0, lx1, "main model"),
                         (rx0, rx1, "MTP module 1 (depth $k$ = 1)")):
        _region(ax, x0 - 0.1, 0.42, x1 + 0.1, 6.5, role="op")
        _text(ax, (x0 + x1) / 2, 6.3, name, size=FONT, weight="bold")

    def bar(x0, x1, y, text, role, h=0.45):
        return _box(ax, (x0 + x1) / 2, y, x1 - x0, h, text, role=role)

    def column(x, stops):
        for (ya, ha), (yb, hb) in zip(stops, stops[1:]):
            _arrow(ax, (x, ya + ha / 2), (x, yb - hb / 2))

    # Main model: t_i -> embedding -> blocks -> h^0_i -> head -> t_{i+1}.
    bar(lx0, lx1, y_emb, "embedding", "weights")
    bar(lx0, lx1, y_block, f"{c.num_hidden_layers} blocks + RMSNorm (causal)", "weights",
        h=0.6)
    bar(lx0, lx1, y_head, "output head", "weights")
    for i, x in enumerate(left_x, start=1):
        _box(ax, x, y_in, cw, ch, f"$t_{i}$", role="data")
        _box(ax, x, y_h, cw, ch, f"$h^0_{i}$", role="data")
        _box(ax, x, y_out, cw, ch, f"$t_{{{i + 1}}}$", role="data", dashed=True)
        column(x, ((y_in, ch), (y_emb, 0.45), (y_block, 0.6), (y_h, ch), (y_head, 0.45),
                   (y_out, ch)))
    bar(lx0 + 0.5, lx1 - 0.5, y_loss, "$\\mathcal{L}_{main}$", "loss", h=0.4)

    # MTP module 1: [RMSNorm(Emb(t_{i+1})) ; RMSNorm(h^0_i)] -> M_1 -> TRM_1 -> head.
    bar(rx0, rx1, y_emb, "embedding", "weights")
    bar(rx0, rx1, y_norm, "RMSNorm of both: Emb$(t_{i+1})$ and $h^0_i$", "op")
    bar(rx0, rx1, y_proj, "concatenate, project: $M_1$ ($2d \\to d$)", "weights")
    bar(rx0, rx1, y_trm, "TRM$_1$: one transformer block (causal)", "weights")
    bar(rx0, rx1, y_head, "output head", "weights")
    for i, x in enumerate(right_x, start=1):
        real = i < positions  # the last position has no t_{i+2} to predict
        _box(ax, x, y_in, cw, ch, f"$t_{{{i + 1}}}$" if real else "", role="data",
             faded=not real)
        _box(ax, x, y_out, cw, ch, f"$t_{{{i + 2}}}$" if real else "", role="data",
             dashed=True, faded=not real)
        if real:
            column(x, ((y_in, ch), (y_emb, 0.45), (y_norm, 0.45), (y_proj, 0.45),
                       (y_trm, 0.45), (y_head, 0.45), (y_out, ch)))
    _text(ax, right_x[-1], (y_norm + y_proj) / 2, f"no $t_{{{positions + 2}}}$:\n"
          "shrinks by 1", color=MUTED)
    bar(rx0 + 0.3, rx1 - 0.3, y_loss, "$\\mathcal{L}^1_{MTP}$, weight "
        f"$\\lambda$ = {c.mtp_loss_weight:g}", "loss", h=0.4)

    # h^0 crosses over into the module's norm; embedding and head are shared.
    gap = (lx1 + rx0) / 2
    _arrow(ax, (lx1, y_h), (gap, y_h), (gap, y_norm), (rx0, y_norm))
    _text(ax, gap, y_h + 0.2, "$h^0_i$", size=FONT)
    for y in (y_emb, y_head):
        _arrow(ax, (lx1 + 0.03, y), (rx0 - 0.03, y), color=ROLES["weights"][1],
               dashed=True, both=True)
        _text(ax, gap, y + 0.2, "shared", color=ROLES["weights"][1])
    _text(ax, 4.5, 0.08, "position $i$: the main model predicts $t_{i+1}$; module 1 combines "
          "$h^0_i$ with $t_{i+1}$ and predicts $t_{i+2}$", va="bottom")
    _legend(ax, ("data", "weights", "op", "loss"), 1.75, 6.62)
    return fig


# --------------------------------------------------------------------------------------
# 08: the FP8 GEMM with fine-grained scales and FP32 promotion.
# --------------------------------------------------------------------------------------

def fp8_gemm(block_size: int = 128, chunks: int = 4) -> Figure:
    """Chapter 08: one FP8 GEMM as DeepSeek-V3 runs it: activation tiles and weight
    blocks with their own scales, chunk sums in the tensor core's short accumulator,
    promotion to FP32 with the two scales every block_size elements of K."""
    fig, ax = _canvas(9, 5.3, f"An FP8 GEMM, $y = x W^\\top$: scales every {block_size} "
                      "along K, FP32 promotion")
    cell, x0 = 0.55, 0.55
    middle = x0 + chunks * cell / 2
    _text(ax, middle, 4.55, "activations $x$ (M × K)", size=FONT, weight="bold")
    for r in range(3):  # rows of 1 x bs tiles
        for k in range(chunks):
            _box(ax, x0 + (k + 0.5) * cell, 4.1 - r * 0.32, cell - 0.04, 0.26, role="data",
                 lw=0.9)
    _text(ax, middle, 3.15, f"one scale per 1 × {block_size} tile\n$s_x$[token, chunk]",
          color=MUTED)
    _text(ax, middle, 2.5, "weights $W$ (N × K)", size=FONT, weight="bold")
    for r in range(2):  # bs x bs blocks
        for k in range(chunks):
            _box(ax, x0 + (k + 0.5) * cell, 2.0 - r * cell, cell - 0.04, cell - 0.04,
                 role="weights", lw=0.9)
    _text(ax, middle, 0.85, f"one scale per {block_size} × {block_size} block\n"
          "$s_W$[block row, chunk]", color=MUTED)

    core = _box(ax, 4.3, 3.2, 2.4, 1.35, role="op")
    _text(ax, core.x, core.y + 0.38, "tensor core, chunk $k$", size=FONT, weight="bold")
    _text(ax, core.x, core.y - 0.12, f"E4M3 × E4M3 products,\nsummed over {block_size} in "
          "a short\naccumulator (~14 bits on H800)")
    _arrow(ax, (x0 + chunks * cell + 0.08, 3.8), (3.1, 3.45))
    _arrow(ax, (x0 + chunks * cell + 0.08, 1.75), (3.1, 2.85))
    _text(ax, 3.1, 2.3, f"chunk $k$:\n{block_size} of K", color=MUTED, ha="left")
    promote = _box(ax, 4.3, 1.35, 2.4, 1.0, role="op")
    _text(ax, promote.x, promote.y + 0.2, "promotion (CUDA cores)", size=FONT, weight="bold")
    _text(ax, promote.x, promote.y - 0.18, "partial × $s_x$[·, $k$] × $s_W$[·, $k$]")
    _arrow(ax, core.bottom, promote.top)
    acc = _box(ax, 7.45, 1.35, 1.7, 1.0, "FP32 accumulator\n$y$ += scaled partial",
               role="data")
    _arrow(ax, promote.right, acc.left)
    _arrow(ax, acc.top, (acc.x, core.y), core.right, color=ROLES["op"][1], dashed=True)
    _text(ax, 7.45, 3.6, f"next chunk, $k$ + 1:\nK / {block_size} chunks in all",
          color=MUTED)
    _text(ax, 4.5, 0.22, "without promotion, all of K stays in the short accumulator: its "
          "rounding error grows with K", color=MUTED)
    _legend(ax, ("data", "weights", "op"), 4.2, 4.7)
    return fig


# --------------------------------------------------------------------------------------
# 07: pretraining with DeepSeek-V3's recipe.
# --------------------------------------------------------------------------------------

def pretraining_step(config=None) -> Figure:
    """Chapter 07: one optimizer step of the pretraining run, the four schedules that set
    it, and what each step leaves behind (the log, evaluations, an atomic checkpoint)."""
    c = _config(config)
    fig, ax = _canvas(9, 5.0, "One pretraining step, and the schedules that set it")
    sel, loss = ROLES["selection"][1], ROLES["loss"][1]
    y, h, w = 2.75, 1.05, 1.62
    rows = _box(ax, 0.95, y, w, h, "read the next\n$B_t$ rows of\ntraining tokens",
                role="data", size=SMALL)
    forward = _box(ax, 2.75, y, w, h, "forward:\n$\\mathcal{L}_{main} + \\lambda_t "
                   "\\mathcal{L}_{MTP}$\n$+\\ \\alpha\\,\\mathcal{L}_{Bal}$", role="loss",
                   size=SMALL)
    backward = _box(ax, 4.55, y, w, h, "backward;\nclip the gradient\nnorm to 1.0",
                    role="loss", size=SMALL)
    adamw = _box(ax, 6.35, y, w, h, "AdamW step at\nlearning rate $\\eta_t$\n(FP32 weights)",
                 role="weights", size=SMALL)
    bias = _box(ax, 8.1, y, 1.5, h, "expert bias:\n$b_i$ += $\\gamma_t\\,$sign\n"
                "$(\\bar c - c_i)$", role="selection", size=SMALL)
    for a, b in ((rows, forward), (forward, backward), (backward, adamw), (adamw, bias)):
        _arrow(ax, a.right, b.left, color=loss if b is backward else INK)

    dials = ((rows, "$B_t$ = ramp(tokens seen)", "batch size"),
             (forward, "$\\lambda_t$ = step list", "MTP weight"),
             (adamw, "$\\eta_t$ = lr(step)", "learning rate"),
             (bias, "$\\gamma_t$ = step list", "bias speed"))
    for box, formula, name in dials:
        dial = _box(ax, box.x, 4.25, 1.72, 0.62, f"{name}\n{formula}", role="op", size=SMALL)
        _arrow(ax, dial.bottom, box.top, color=sel, dashed=True)
    _text(ax, 4.55, 4.25, "schedules:\nfunctions of\nthe step or\nthe tokens", color=MUTED)

    log = _box(ax, 1.55, 0.95, 2.6, 0.9, "log.jsonl: losses, grad norm,\nMaxVio, lr, "
               "$B_t$, tokens/s", role="data", size=SMALL)
    val = _box(ax, 4.45, 0.95, 2.6, 0.9, "validation loss every\neval_every steps "
               "(the book\nrun: every 50 of 350)", role="data", size=SMALL)
    ckpt = _box(ax, 7.4, 0.95, 2.7, 0.9, "checkpoint: written to staging,\nrenamed to ready"
                "\n(weights, AdamW, data position)", role="weights", size=SMALL)
    _arrow(ax, bias.bottom, (bias.x, 1.75), (log.x, 1.75), log.top)
    _arrow(ax, (val.x, 1.75), val.top)
    _arrow(ax, (ckpt.x, 1.75), ckpt.top)
    _arrow(ax, (log.x, 1.75), (0.5, 1.75), (0.5, y - h / 2), color=MUTED, dashed=True)
    _text(ax, 0.58, 1.98, "step $t$ + 1", color=MUTED, ha="left")
    _legend(ax, ("data", "loss", "weights", "selection"), 0.2, 0.08)
    return fig


def v3_recipe() -> Figure:
    """Chapter 07: DeepSeek-V3's pretraining schedules over its 14.8T tokens (report §4.2),
    each drawn by minids' own schedule objects with one "step" = one billion tokens."""
    from minids.schedule import BatchRamp, LRSchedule, StepSchedule

    billions = torch.arange(0, 14801, 5).tolist()  # the x axis: tokens, in units of 1B
    warmup = 28  # 2K steps at about 3,400 sequences of 4K tokens: ~28B tokens (derived)
    lr = LRSchedule(2.2e-4, warmup, 10_000 - warmup, 4_300, final_ratio=0.1,
                    tails=((333, 0.1), (167, 7.3e-6 / 2.2e-4)), warmup_from_zero=True)
    panels = (
        ("learning rate", [lr(int(b)) * 1e4 for b in billions], "lr (×10⁻⁴)",
         ((2.0, 2.35, "2.2e-4, constant to 10T"), (12.5, 1.6, "cosine to\n2.2e-5"),
          (4.2, 0.55, "then 2.2e-5 for 0.333T,\n7.3e-6 for the last 0.167T →"))),
        ("batch size", [BatchRamp(3072, 15360, 469)(int(b)) / 1e3 for b in billions],
         "sequences (×1000)", ((2.0, 13.2, "3,072 → 15,360 over\nthe first 0.469T"),)),
        ("MTP loss weight λ", [StepSchedule(((0, 0.3), (10_000, 0.1)))(int(b))
                               for b in billions], "λ",
         ((2.0, 0.25, "0.3 for 10T tokens"), (10.3, 0.15, "0.1 after"))),
        ("bias update speed γ", [StepSchedule(((0, 1e-3), (14_300, 0.0)))(int(b)) * 1e3
                                 for b in billions], "γ (×10⁻³)",
         ((2.0, 0.8, "0.001"), (9.3, 0.25, "0 for the last 0.5T"))),
    )
    fig = Diagram(figsize=(9, 5.4), dpi=100)
    fig.suptitle("DeepSeek-V3's pretraining recipe over its 14.8T tokens", y=0.985,
                 va="top", fontsize=TITLE, fontweight="bold", color=INK)
    x = [b / 1e3 for b in billions]  # T tokens
    for k, (title, values, ylabel, notes) in enumerate(panels):
        row, col = divmod(k, 2)
        panel = fig.add_axes((0.08 + col * 0.49, 0.56 - row * 0.45, 0.4, 0.32))
        panel.plot(x, values, color=ROLES["weights"][1], lw=1.6)
        panel.set_title(title, fontsize=FONT, color=INK)
        panel.set_ylabel(ylabel, fontsize=SMALL)
        panel.set_xlim(0, 14.8)
        panel.set_xticks(range(0, 15, 2))
        panel.set_ylim(0, max(values) * 1.3)
        panel.tick_params(labelsize=SMALL)
        if row == 1:
            panel.set_xlabel("tokens seen (trillions)", fontsize=SMALL)
        for nx, ny, note in notes:
            panel.text(nx, ny, note, fontsize=SMALL, color=MUTED, va="center")
    return fig


# --------------------------------------------------------------------------------------
# 09: long context.
# --------------------------------------------------------------------------------------

def _arc(ax, x, y, r, start, stop, color, lw, dashed=False):
    """An arc of the circle at (x, y), radius r, from angle start to stop (radians,
    counter-clockwise from 3 o'clock)."""
    steps = max(2, int(abs(stop - start) / 0.02))
    angles = torch.linspace(start, stop, steps)
    ax.plot((x + r * angles.cos()).tolist(), (y + r * angles.sin()).tolist(), color=color,
            lw=lw, ls="--" if dashed else "-", solid_capstyle="butt", zorder=3)


def rope_clocks(config=None, trained: int = 256, extended: int = 1024) -> Figure:
    """Chapter 09: each RoPE pair is a clock hand that turns position x inv_freq. Over the
    trained context a fast hand goes round many times, a slow one sweeps a small arc;
    run longer and the slow hand points where training never saw it. Position
    interpolation slows every hand, so neighbours also turn apart by less; YaRN slows
    only the slow ones. Rows: plain RoPE, PI and YaRN at factor extended / trained;
    columns: the fastest pair, one on YaRN's ramp and a slow one."""
    from minids.rope import linear_inv_freq, rope_inv_freq, yarn_inv_freq

    c = _config(config)
    dim, base, factor = c.qk_rope_head_dim, c.rope_theta, extended / trained
    pairs = (0, dim // 2 - 5, dim // 2 - 3)  # the fastest, one on YaRN's ramp, a slow one
    methods = (("plain RoPE", rope_inv_freq(dim, base)),
               (f"position interpolation (÷{factor:g})", linear_inv_freq(dim, base, factor)),
               ("YaRN", yarn_inv_freq(dim, base, factor, trained)))
    seen = rope_inv_freq(dim, base) * (trained - 1)  # the arc training swept, per pair
    fig, ax = _canvas(9, 6.6, f"RoPE's hands at {trained:,} and {extended:,} tokens")
    two_pi, r = 2 * torch.pi, 0.5
    for col, pair in enumerate(pairs):
        x = 3.3 + col * 2.1
        wavelength = two_pi / rope_inv_freq(dim, base)[pair].item()
        _text(ax, x, 5.85, f"pair {pair}: one turn\nevery {wavelength:,.0f} tokens", size=SMALL)
        for row, (name, inv_freq) in enumerate(methods):
            y = 4.75 - row * 1.6
            if col == 0:
                _text(ax, 0.95, y, name.replace(" (", "\n("), size=FONT, ha="center")
            ax.add_patch(Circle((x, y), r, facecolor="none", edgecolor=MUTED, lw=0.6))
            reach = inv_freq[pair].item() * (extended - 1)
            trained_arc = min(seen[pair].item(), two_pi)
            _arc(ax, x, y, r, 0, trained_arc, ROLES["weights"][1], 3.2)
            if reach > trained_arc:
                _arc(ax, x, y, r, trained_arc, min(reach, two_pi), ROLES["loss"][1], 3.2,
                     dashed=True)
            new = max(0.0, min(reach, two_pi) - trained_arc) * 180 / torch.pi
            step = inv_freq[pair].item() * 180 / torch.pi
            _text(ax, x, y - r - 0.32, f"new angles: {new:.0f}°\n{step:.3g}° a token",
                  size=SMALL, color=ROLES["loss"][1] if new >= 0.5 else MUTED)
    blue = Patch(facecolor=ROLES["weights"][1], label=f"angles training saw (positions "
                 f"0–{trained - 1})")
    orange = Patch(facecolor=ROLES["loss"][1], label=f"new angles up to position "
                   f"{extended - 1:,}")
    ax.legend(handles=[blue, orange], loc="lower center", bbox_to_anchor=(4.5, 0.05),
              bbox_transform=ax.transData, ncol=2, frameon=False, fontsize=SMALL)
    return fig


def context_extension() -> Figure:
    """Chapter 09: V3's two YaRN stages (report §4.3) and the book's, at 1/16 the length;
    the book's stages are read from minids.long.STAGES."""
    from minids.long import STAGES

    fig, ax = _canvas(9, 3.7, "Extending the context in two YaRN stages")
    base, first, second = STAGES
    rows = (("DeepSeek-V3", 2.75, ("pretraining\n4K tokens, 14.8T tokens",
                                    "stage 1: 32K tokens\n1,000 steps × 1,920 rows",
                                    "stage 2: 128K tokens\n1,000 steps × 480 rows"),
             "YaRN s = 40, α = 1, β = 32; lr 7.3e-6"),
            ("the book", 1.05, (f"base model\n{base.seq_len} tokens, {base.steps:,} steps",
                                f"stage 1: {first.seq_len} tokens\n{first.steps} steps × "
                                f"{first.batch_size} rows",
                                f"stage 2: {second.seq_len:,} tokens\n{second.steps} steps "
                                f"× {second.batch_size} rows"),
             f"YaRN s = {first.rope_scaling['factor']:g}, same α, β; lr {first.max_lr:g}"))
    for name, y, boxes, note in rows:
        _text(ax, 0.7, y, name, size=FONT, weight="bold")
        xs = (2.45, 4.95, 7.45)
        for i, (x, text) in enumerate(zip(xs, boxes)):
            _box(ax, x, y, 2.0, 0.72, text, role="op" if i == 0 else "weights", size=SMALL)
            if i:
                _arrow(ax, (xs[i - 1] + 1.0, y), (x - 1.0, y))
        _text(ax, 6.2, y - 0.62, note, size=SMALL, color=MUTED)
    _text(ax, 4.5, 0.12, "each stage fine-tunes the one before on longer rows; the YaRN "
          "scale stays the same in both", color=MUTED)
    return fig


# --------------------------------------------------------------------------------------
# 10: serving.
# --------------------------------------------------------------------------------------

def disaggregated_serving() -> Figure:
    """Chapter 10: one GPU that prefills and decodes (its decoding steps wait behind each
    prefill) against separate prefill and decode GPUs, with V3's deployment (report
    §3.4) beside them."""
    fig, ax = _canvas(9, 4.9, "Prefill and decode: on the same GPUs, or apart")
    step, prefill = 0.32, 1.1  # widths in inches: a decoding step, a prefill
    lanes = (("colocated\n(one GPU)", 3.75, ("d", "d", "P", "d", "d", "d", "P", "d")),
             ("prefill GPU", 1.95, ("P", "P", "P", "P")),
             ("decode GPU", 0.95, ("d",) * 15))
    for name, y, blocks in lanes:
        _text(ax, 0.75, y, name, size=SMALL, weight="bold")
        x = 1.55
        for block in blocks:
            width = prefill if block == "P" else step
            role = "weights" if block == "P" else "cached"
            _box(ax, x + width / 2, y, width - 0.04, 0.42, "prefill" if block == "P" else "",
                 role=role, size=SMALL)
            x += width
    _text(ax, 3.9, 3.2, "while a prompt is prefilled, every running request waits",
          color=MUTED)
    _text(ax, 3.9, 1.45, "KV cache of each prompt → a decode GPU", color=MUTED)
    _arrow(ax, (2.1, 1.72), (2.1, 1.2))
    _arrow(ax, (5.4, 1.72), (5.4, 1.2))
    _text(ax, 3.9, 0.42, "decoding steps run back to back; the prefill GPUs set the time "
          "to first token", color=MUTED)
    _region(ax, 6.75, 0.6, 8.85, 4.05, role="op")
    _text(ax, 7.8, 3.8, "DeepSeek-V3 (§3.4)", size=FONT, weight="bold")
    _text(ax, 7.8, 3.05, "prefill: 4 nodes, 32 GPUs\nexperts over 32 GPUs (EP32)\n"
          "+ 32 redundant experts", size=SMALL)
    _text(ax, 7.8, 1.75, "decode: 40 nodes, 320 GPUs\nexperts over 320 GPUs\n(EP320)",
          size=SMALL)
    handles = [Patch(facecolor=ROLES[role][0], edgecolor=ROLES[role][1], label=label)
               for role, label in (("weights", "prefill of one prompt (compute-bound)"),
                                   ("cached", "one decoding step of the batch "
                                              "(memory-bound)"))]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(1.55, 4.3),
              bbox_transform=ax.transData, ncol=2, frameon=False, fontsize=SMALL,
              borderaxespad=0, borderpad=0)
    return fig


def cache_layouts(config=None) -> Figure:
    """Chapter 10: MLA's decoding cache kept three ways, drawn to scale (box widths are
    the numbers cached per token and layer), with the work a step does per cached token
    (FLOPs from minids.inference)."""
    from minids.inference import attention_flops_per_cached_token, cache_elements_per_token

    c = _config(config)
    H, nope, rope, v = c.num_attention_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim
    expanded = cache_elements_per_token(c, "expanded")
    fig, ax = _canvas(9, 5.0, "MLA's cache three ways: what one token leaves in it, to scale")
    x0, width = 2.05, 3.9  # the cache column: `width` inches hold the expanded layout
    inch = width / expanded  # inches per cached number
    rows = (
        ("expanded", "expanded\n(DeepSeek, naive)", 3.3,
         "step: scores and weighted\nsum over the cached K, V"),
        ("reexpand", "re-expanded\n(transformers; minids,\nnaive path)", 2.0,
         "step: rebuild K, V from every\ncached c, then as above"),
        ("absorbed", "absorbed\n(DeepSeek, absorb;\nFlashMLA)", 0.65,
         "step: $q\\,W^{UK}$ against c directly,\nsum of c's, then $W^{UV}$"),
    )
    for layout, name, y, work in rows:
        _text(ax, 0.95, y, name, size=SMALL, weight="bold")
        flops = attention_flops_per_cached_token(c, layout)
        _text(ax, 7.5, y + 0.12, work, size=SMALL)
        _text(ax, 7.5, y - 0.42, f"{flops:,} FLOPs per cached token", size=SMALL,
              color=MUTED)
        if layout == "expanded":
            k_w, v_w = H * (nope + rope) * inch, H * v * inch
            _box(ax, x0 + k_w / 2, y, k_w - 0.03, 0.5, f"K: {H} heads × {nope + rope}",
                 role="cached", size=SMALL)
            _box(ax, x0 + k_w + v_w / 2, y, v_w - 0.03, 0.5, f"V: {H} × {v}",
                 role="cached", size=SMALL)
            continue
        c_w = c.kv_lora_rank * inch
        _box(ax, x0 + c_w / 2, y, c_w - 0.03, 0.5, f"c: {c.kv_lora_rank}", role="cached",
             size=SMALL)
        _box(ax, x0 + c_w + rope * inch / 2, y, max(rope * inch - 0.03, 0.05), 0.5,
             role="cached")
        _text(ax, x0 + c_w + rope * inch / 2, y - 0.42, f"$k^R$: {rope}", size=SMALL)
        if layout == "reexpand":
            rest = width - c_w - rope * inch - 0.25
            _box(ax, x0 + width - rest / 2, y, rest, 0.5, "K, V rebuilt each step,\nnot kept",
                 role="data", size=SMALL, dashed=True, faded=True)
    total = expanded / cache_elements_per_token(c, "absorbed")
    _text(ax, x0 + width / 2, 4.35, f"cached numbers per token and layer: {expanded:,} "
          f"expanded, {cache_elements_per_token(c, 'absorbed'):,} latent ({total:.0f}x "
          f"fewer)", size=SMALL, color=MUTED)
    _legend(ax, ["cached", "data"], x0, 3.72)
    return fig


# --------------------------------------------------------------------------------------
# 11: supervised fine-tuning: the answer mask, and examples packed with a document mask.
# --------------------------------------------------------------------------------------

SFT_PROMPT = ("bos", "user", "What", "␣is", "␣7", "␣+", "␣5", "?", "asst")
SFT_ANSWER = ("Answer", ":", "␣1", "2", "eos")


def sft_masks() -> Figure:
    """Chapter 11: which targets an SFT example trains on, and several examples packed in
    one row with attention kept inside each (the document mask)."""
    fig, ax = _canvas(9, 6.6, "SFT: the loss on the answer only; examples packed, each "
                      "seeing itself")
    _text(ax, 0.1, 6.05, "1. One example in the chat template: inputs are tokens[:-1], "
          "targets tokens[1:]", size=FONT, weight="bold", ha="left")
    tokens = SFT_PROMPT + SFT_ANSWER
    w, x0 = 0.56, 1.3
    special = {"bos", "user", "asst", "eos"}
    for row, (label, y) in enumerate((("input", 5.5), ("target", 4.95))):
        _text(ax, x0 - 0.12, y, label, ha="right", color=MUTED)
        for i in range(len(tokens) - 1):
            token = tokens[i + row]
            counted = row == 1 and i + 1 >= len(SFT_PROMPT)
            ignored = row == 1 and not counted
            _box(ax, x0 + i * w + w / 2, y, w - 0.05, 0.36, "−100" if ignored else token,
                 role="loss" if counted else "data", size=SMALL, faded=ignored,
                 weight="bold" if token in special and not ignored else "normal")
    split = x0 + (len(SFT_PROMPT) - 1) * w
    _text(ax, (x0 + split) / 2, 4.5, "prompt: target −100, no loss", color=MUTED)
    _text(ax, split + (len(tokens) - len(SFT_PROMPT)) * w / 2, 4.5,
          "answer + eos: the loss", color=ROLES["loss"][1])

    _text(ax, 0.1, 3.9, "2. A batch of three examples (A, B, C): one a row, or packed",
          size=FONT, weight="bold", ha="left")
    lengths = {"A": 5, "B": 9, "C": 3}
    roles = {"A": "weights", "B": "cached", "C": "selection"}
    cw, width = 0.26, 9

    def row(x, y, pieces):
        i = 0
        for name, n in pieces:
            for _ in range(n):
                pad = name == "pad"
                _box(ax, x + i * cw + cw / 2, y, cw - 0.03, 0.28, "·" if pad else name,
                     role="op" if pad else roles[name], size=SMALL, faded=pad, lw=0.8)
                i += 1

    _text(ax, 0.25, 3.45, "padded", ha="left", color=MUTED)
    for r, name in enumerate("ABC"):
        row(0.25, 3.05 - r * 0.36, [(name, lengths[name]), ("pad", width - lengths[name])])
    _text(ax, 0.25 + width * cw / 2, 1.72, "27 slots, 10 of them padding", color=MUTED)
    _text(ax, 3.3, 3.45, "packed (first fit)", ha="left", color=MUTED)
    row(3.3, 3.05, [("A", 5), ("C", 3), ("pad", 1)])
    row(3.3, 2.69, [("B", 9)])
    _text(ax, 3.3 + width * cw / 2, 1.72, "18 slots, 1 padding", color=MUTED)

    # the attention mask of the first packed row: causal within A, within C, nothing across
    ids = ["A"] * 5 + ["C"] * 3 + ["pad"]
    cell, mx, my = 0.25, 6.35, 3.35
    _text(ax, mx + 4.5 * cell, my + 0.35, "row 1's attention mask", color=MUTED)
    for q, a in enumerate(ids):
        for k, b in enumerate(ids):
            seen = k <= q and a == b
            role = roles.get(a, "op") if seen else "op"
            _box(ax, mx + k * cell + cell / 2, my - q * cell, cell - 0.02, cell - 0.02,
                 role=role, faded=not seen, lw=0.6)
    _text(ax, mx - 0.15, my - 4 * cell, "query", rotation=90, color=MUTED)
    _text(ax, mx + 4.5 * cell, my - 9 * cell + 0.02, "key", color=MUTED)
    _text(ax, 0.1, 0.1,
          "Packing computes fewer slots for the same examples. The document mask keeps each "
          "example blind to\nthe others (V3 §5.1's sample masking); RoPE scores depend only "
          "on distances, so each example\nattends exactly as it would alone, and the loss is "
          "the padded batch's.", ha="left", va="bottom", linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------
# 12: one GRPO step.
# --------------------------------------------------------------------------------------

GRPO_EXAMPLE = (("45 + 9: 5 + 9 = 14, write 4 carry 1. 4 + 0 + 1 = 5, write 54. Answer: 54", 1.1),
                ("45 + 9: 5 + 9 = 14, write 4. 4 + 0 = 4, write 44. Answer: 44", 0.1),
                ("45 + 9: 5 + 9 = 13, write 3 carry 1. 4 + 0 + 1 = 5, write 53. Answer: 53", 0.1),
                ("45 + 9: 5 + 9 = 14, write 4 carry 1. 4 + 0 + 1 = 5, write 54. Answer: 54", 1.1))


def grpo_step() -> Figure:
    """Chapter 12: one GRPO step for one prompt: G sampled answers, rewards by rule,
    advantages within the group, and the loss that pushes each answer's tokens by its
    advantage, clipped, and held near a frozen reference."""
    from minids.grpo import group_advantages

    fig, ax = _canvas(9, 5.0, "One GRPO step: sample a group, score by rule, compare "
                      "within the group", bottom=0.45)
    prompt = _box(ax, 0.85, 3.3, 1.4, 0.9, "prompt q\n\"What is 45 + 9?\"", role="data",
                  size=SMALL)
    policy = _box(ax, 2.35, 3.3, 1.0, 0.9, "policy\n$\\pi_\\theta$\n(samples\nat T)",
                  role="weights", size=SMALL)
    _arrow(ax, prompt.right, policy.left)
    rewards = torch.tensor([[r for _, r in GRPO_EXAMPLE]])
    advantages = group_advantages(rewards)[0]
    top, pitch = 4.55, 0.8
    for i, (text, r) in enumerate(GRPO_EXAMPLE):
        y = top - i * pitch
        short = text.split(": ", 1)[1]
        lines = textwrap.wrap(f"o{i + 1}: {short}", 40)
        answer_box = _box(ax, 4.6, y, 3.1, 0.6, "\n".join(lines), role="data", size=7.5,
                          family="monospace")
        _arrow(ax, policy.right, answer_box.left)
        _box(ax, 6.65, y, 0.75, 0.5, f"r = {r:.1f}", role="op", size=SMALL)
        _box(ax, 7.75, y, 1.05, 0.5, f"A = {advantages[i]:+.2f}",
             role="loss" if advantages[i] > 0 else "data", size=SMALL)
    _text(ax, 4.6, 5.0, "G answers to the same prompt (here G = 4)", color=MUTED)
    _text(ax, 6.65, 5.0, "reward: rule", color=MUTED)
    _text(ax, 7.75, 5.0, "(r - mean) / std", color=MUTED)
    _text(ax, 0.15, 1.4,
          "loss per token of $o_i$:  $-\\left[\\min\\left(\\rho A_i,\\; "
          "\\mathrm{clip}(\\rho, 1-\\epsilon, 1+\\epsilon)\\, A_i\\right) - "
          "\\beta\\, k_3\\right]$,   $\\rho = \\pi_\\theta / \\pi_{old}$,"
          "   $k_3 = \\pi_{ref}/\\pi_\\theta - \\log(\\pi_{ref}/\\pi_\\theta) - 1$",
          ha="left", size=FONT)
    _text(ax, 0.15, 0.85,
          "reward 1 for the right final answer + 0.1 for ending \"Answer: N\"; no value "
          "network: the group's mean is the baseline.\n$\\pi_{old}$ sampled the group; "
          "$\\pi_{ref}$ is the frozen SFT model. Right answers (red) are pushed up, wrong "
          "ones down.", ha="left", size=SMALL, color=MUTED, linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------
# 13: distillation by rejection sampling.
# --------------------------------------------------------------------------------------

def rejection_sampling(samples: int = 4) -> Figure:
    """Chapter 13: a teacher samples up to k answers to each training problem, a rule keeps
    the first right one, and a student is fine-tuned on what was kept."""
    fig, ax = _canvas(9, 4.4, "Distillation by rejection sampling: the teacher writes, a "
                      "rule checks, the student imitates", bottom=0.2)
    problem = _box(ax, 0.9, 2.5, 1.5, 0.8, "training problem\n\"What is 45 + 9?\"",
                   role="data", size=SMALL)
    teacher = _box(ax, 2.55, 2.5, 1.2, 0.8, "teacher\n(the GRPO\nmodel)", role="weights",
                   size=SMALL)
    _arrow(ax, problem.right, teacher.left)
    outcomes = ("44: wrong", "54: right, kept") + ("not drawn",) * (samples - 2)
    top = 3.55
    for i in range(samples):
        y = top - i * 0.7
        box = _box(ax, 4.55, y, 2.2, 0.5, f"sample {i + 1}: {outcomes[i]}",
                   role="loss" if i == 1 else "data", size=SMALL, faded=i >= 2)
        _arrow(ax, teacher.right, box.left, dashed=i >= 2)
    _text(ax, 4.55, 4.15, f"up to k = {samples}, at temperature 0.7", color=MUTED)
    rule = _box(ax, 6.45, 3.2, 1.0, 0.5, "rule:\nexact answer", role="op", size=SMALL)
    _arrow(ax, (5.65, 3.55), (6.45, 3.55), rule.top)
    _arrow(ax, (5.65, 2.85), rule.bottom)
    data = _box(ax, 6.45, 1.75, 1.15, 0.8, "SFT data:\nquestion +\nkept answer",
                role="data", size=SMALL)
    _arrow(ax, (7.0, 3.2), (7.2, 3.2), (7.2, 2.4), (6.8, 2.4), (6.8, 2.15))
    student = _box(ax, 8.2, 1.75, 1.3, 0.8, "student\n(pretrained,\nSFT recipe)",
                   role="weights", size=SMALL)
    _arrow(ax, data.right, student.left)
    _text(ax, 0.15, 0.65,
          "Sampling stops at the first right answer; a problem never solved in k samples "
          "gives no example.\nDeepSeek-V3 drew its reasoning SFT data this way from "
          "DeepSeek-R1 models (its report, §5.1).", ha="left", color=MUTED, linespacing=1.35)
    return fig


# --------------------------------------------------------------------------------------
# Appendix A: minids in the Hugging Face ecosystem.
# --------------------------------------------------------------------------------------

def hf_ecosystem(config=None) -> Figure:
    """Appendix A: what `save_hf` writes, and which transformers classes read each file."""
    c = _config(config)
    fig, ax = _canvas(9, 4.6, "From a minids run folder to the Hugging Face classes")
    column_top, pitch, h = 3.55, 0.78, 0.62

    _region(ax, 0.15, 0.55, 2.55, 4.1, role="op")
    _text(ax, 1.35, 3.95, "minids run folder", size=FONT, weight="bold")
    ours = (("model.safetensors", "minids names\n(wq_a, experts.w1 ...)"),
            ("config.json", f"ModelConfig\n({c.num_hidden_layers} layers, MLA, MoE)"),
            ("tokenizer.json", "BPE, chat template\nin Python"))
    for i, (name, note) in enumerate(ours):
        y = column_top - i * pitch - 0.2
        _box(ax, 1.35, y, 2.1, h, f"{name}\n{note}", role="data", size=SMALL)

    convert = _box(ax, 3.25, 2.3, 1.1, 1.0, "save_hf\n\nexport --hf", role="op", size=SMALL)
    _arrow(ax, (2.55, 2.3), convert.left)

    _region(ax, 3.95, 0.2, 6.45, 4.1, role="op")
    _text(ax, 5.2, 3.95, "transformers folder", size=FONT, weight="bold")
    theirs = (("model.safetensors", "DeepseekV3 names,\nsame tensors"),
              ("config.json", "DeepseekV3Config,\nbos / eos / pad ids"),
              ("tokenizer.json + _config", "same BPE; chat\ntemplate in Jinja"),
              ("generation_config.json", "greedy, stops\nat <|eos|>"))
    rows = []
    for i, (name, note) in enumerate(theirs):
        y = column_top - i * pitch - 0.2
        rows.append(_box(ax, 5.2, y, 2.2, h, f"{name}\n{note}", role="data", size=SMALL))
    _arrow(ax, convert.right, (3.95, 2.3))

    users = (("AutoModelForCausalLM\n.generate, pipeline", 3.35),
             ("AutoTokenizer\napply_chat_template", 2.3),
             ("AutoModelForSequence-\nClassification + Trainer", 1.25))
    for text, y in users:
        box = _box(ax, 7.7, y, 2.2, 0.72, text, role="op", size=SMALL)
        _arrow(ax, (6.45, y), box.left)
    _text(ax, 4.5, 0.05, "logits and greedy tokens equal minids' own; the classifier adds "
          "one new matrix, score", color=MUTED, va="bottom")
    return fig


DIAGRAMS = (pipeline, bpe_and_packing, transformer_block, mla_dataflow, deepseekmoe_layer,
            bias_balancing_loop, mtp_across_positions, pretraining_step, v3_recipe, fp8_gemm,
            rope_clocks, context_extension, disaggregated_serving, sft_masks, grpo_step,
            rejection_sampling, hf_ecosystem)

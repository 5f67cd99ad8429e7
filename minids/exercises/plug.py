"""Your pieces inside the model: run a MiniDeepSeek with a learner's function in place of
minids' own, and compare.

    with plug(model, "03.1", attend_naive):
        logits = model(ids).logits  # every MLA layer now attends with attend_naive

    plugged = compare_in_model(model, "03.1", attend_naive, ids)  # logits, greedy text

The exercises that plug in take the module as their first argument and then the
arguments of the method they replace: `attend_naive(mla, q_nope, q_rope, latent, k_rope)`
stands for `MLA.attend_naive`. `plug` sets the function, bound to each matching module,
as that module's attribute for the duration of the block, and removes it after, even if
the block raised. Plugged pieces are for checking and decoding: while the MoE layer is
plugged, its router's load counts (chapter 05's bias updates) see no tokens.
"""

import functools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from minids.fp8 import FP8Linear
from minids.generate import generate, speculative_generate
from minids.mla import MLA
from minids.model import MiniDeepSeek
from minids.moe import DeepSeekMoE, sequence_balance_loss
from minids.mtp import MTPModule

IDENTICAL_LOGITS = 1e-4  # float32: the same computation in another order differs ~1e-6


def _moe_layer(fn: Callable, moe: DeepSeekMoE) -> Callable:
    """The learner's layer returns y (B, T, H); the model also wants the balance loss."""

    def forward(x, with_balance=True):
        if not with_balance:
            return fn(moe, x), x.new_zeros(())
        B, T, H = x.shape
        scores = moe.gate.affinities(x.reshape(B * T, H)).view(B, T, -1)
        balance = sequence_balance_loss(scores, moe.gate.top_k, moe.balance_loss_alpha)
        return fn(moe, x), balance

    return forward


def _bound(fn: Callable, module: nn.Module) -> Callable:
    return functools.partial(fn, module)


@dataclass(frozen=True)
class Socket:
    """Where an exercise plugs in: the method it replaces on every module of a type."""

    module_type: type
    method: str
    what: str  # for messages: "MLA layer"
    absorb: bool = False  # decode (and run the logits) through the absorbed path
    mtp: bool = False  # the piece is the MTP module: compare its logits and drafts
    adapt: Callable = _bound  # (fn, module) -> the replacement method
    needs: str = ""  # for a model without the module: how to get one


SOCKETS = {
    "03.1": Socket(MLA, "attend_naive", "MLA layer"),
    "03.2": Socket(MLA, "attend_absorbed", "MLA layer", absorb=True),
    "04.4": Socket(DeepSeekMoE, "forward", "MoE layer", adapt=_moe_layer),
    "06.1": Socket(MTPModule, "forward", "MTP module", mtp=True),
    "08.4": Socket(FP8Linear, "forward", "FP8 linear layer",
                   needs="convert it first: minids.fp8.convert_to_fp8(model)"),
}


def _socket(exercise_id: str) -> Socket:
    if exercise_id not in SOCKETS:
        raise ValueError(f"exercise {exercise_id!r} does not plug into the model; these do: "
                         f"{', '.join(SOCKETS)}")
    return SOCKETS[exercise_id]


@contextmanager
def plug(model: nn.Module, exercise_id: str, fn: Callable):
    """Within the block, every module that exercise_id's piece replaces runs fn instead
    (fn receives the module first). Yields how many modules were plugged."""
    socket = _socket(exercise_id)
    if not callable(fn):
        raise ValueError(f"plug needs a function for {exercise_id}, got {type(fn).__name__}")
    modules = [m for m in model.modules() if isinstance(m, socket.module_type)]
    if not modules:
        raise ValueError(f"the model has no {socket.what} for exercise {exercise_id} to "
                         f"plug into{': ' + socket.needs if socket.needs else ''}")
    for module in modules:
        module.__dict__[socket.method] = socket.adapt(fn, module)  # shadows the method
    try:
        yield len(modules)
    finally:
        for module in modules:
            module.__dict__.pop(socket.method, None)


@dataclass(frozen=True)
class Comparison:
    """The model run with the learner's piece and with minids' own, on the same input."""

    exercise_id: str
    plugged: int  # modules that ran the learner's function
    attempted: bool  # False while the function still raises NotImplementedError
    error: str = ""  # the exception the plugged model raised, in one line
    max_logit_diff: float = math.inf  # largest |logit difference| over the input
    same_tokens: bool = False  # greedy decoding gave the same tokens
    tokens: torch.Tensor | None = None  # (1, T + n): what the plugged model decoded
    accepted: tuple[int, int] | None = None  # MTP drafts accepted (plugged, minids')

    @property
    def identical(self) -> bool:
        return (self.attempted and not self.error and self.same_tokens
                and self.max_logit_diff <= IDENTICAL_LOGITS
                and (self.accepted is None or self.accepted[0] == self.accepted[1]))


@torch.no_grad()
def _run(model: MiniDeepSeek, socket: Socket, input_ids, max_new_tokens):
    """(logits, decoded tokens, accepted drafts or None) of one way of running the model."""
    if socket.mtp:
        T = input_ids.shape[1]
        hidden = model(input_ids).hidden
        cos, sin = model.rope_cos[: T - 1], model.rope_sin[: T - 1]
        _, logits, _ = model.mtp[0](hidden[:, :-1], input_ids[:, 1:], cos, sin)
        result = speculative_generate(model, input_ids, max_new_tokens)
        return logits, result.tokens, result.accepted
    logits = model(input_ids, absorb=socket.absorb).logits
    return logits, generate(model, input_ids, max_new_tokens, absorb=socket.absorb), None


def compare_in_model(model: MiniDeepSeek, exercise_id: str, fn: Callable, input_ids,
            max_new_tokens: int = 32) -> Comparison:
    """Run the model on input_ids (1, T) and greedily continue it by max_new_tokens, once
    with fn plugged in and once as minids has it; print what differs, in three lines.
    For the MTP module, the logits are the module's and the decoding is speculative."""
    socket = _socket(exercise_id)
    was_training = model.training
    model.eval()
    try:
        logits, tokens, accepted = _run(model, socket, input_ids, max_new_tokens)
        with plug(model, exercise_id, fn) as count:
            try:
                mine = _run(model, socket, input_ids, max_new_tokens)
            except NotImplementedError:
                result = Comparison(exercise_id, count, attempted=False)
            except Exception as error:  # the learner's bug: one line, the model unharmed
                text = " ".join(str(error).split())[:200]
                result = Comparison(exercise_id, count, True, f"{type(error).__name__}: {text}")
            else:
                result = Comparison(
                    exercise_id, count, True,
                    max_logit_diff=float((mine[0] - logits).abs().max()),
                    same_tokens=mine[1].shape == tokens.shape and torch.equal(mine[1], tokens),
                    tokens=mine[1], accepted=None if accepted is None else (mine[2], accepted),
                )
    finally:
        model.train(was_training)
    print(_report(result, socket, fn, input_ids.shape[1], max_new_tokens))
    return result


def _report(result: Comparison, socket: Socket, fn: Callable, T: int, n: int) -> str:
    name = getattr(fn, "__name__", "your function")
    plural = "" if result.plugged == 1 else "s"
    head = f"{result.exercise_id}: {name}() in {result.plugged} {socket.what}{plural} of the model"
    if not result.attempted:
        return f"{head}: not yet: {name}() still raises NotImplementedError"
    if result.error:
        return f"{head}: the model raised {result.error}"
    decoding = "speculative decoding" if socket.mtp else "greedy decoding"
    same = "the same tokens" if result.same_tokens else "DIFFERENT tokens"
    lines = [head,
             f"logits on {T} tokens: largest difference from minids' own "
             f"{result.max_logit_diff:.1e}",
             f"{decoding} of {n} tokens: {same}"]
    if result.accepted is not None:
        lines[-1] += f", {result.accepted[0]} drafts accepted (minids: {result.accepted[1]})"
    return "\n".join(lines)

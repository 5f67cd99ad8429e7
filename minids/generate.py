"""Text generation from the latent KV cache.

The prompt is processed once (prefill, naive MLA path); then each new token attends to
the cached latents through the absorbed path. `speculative_generate` adds MTP drafting
(REFERENCE §4): the MTP module guesses the token after next, and one main-model pass on
two tokens both produces the next token and verifies the guess. Greedy output is the
same token for token, and sampled output has the same distribution (the rejection rule
of speculative sampling); accepted guesses save main-model passes.
"""

import math
from dataclasses import dataclass

import torch

from minids.model import MiniDeepSeek, check_token_ids


def _check_request(model, input_ids, max_new_tokens):
    check_token_ids(input_ids, model.config.vocab_size)  # the model's own check, up front
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    context = model.config.max_position_embeddings
    if input_ids.shape[1] + max_new_tokens > context:
        raise ValueError(f"the prompt ({input_ids.shape[1]} tokens) plus max_new_tokens "
                         f"({max_new_tokens}) exceeds the context of {context} tokens")


def check_sampling(temperature=0.0, top_k=None, top_p=None):
    """ValueError naming the first sampling setting that cannot be used."""
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")


def sample_next(logits, temperature=0.0, top_k=None, top_p=None, generator=None):
    """Pick one token per row of logits (B, vocab): greedy at temperature 0, else draw
    from sampling_probs(logits, temperature, top_k, top_p)."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sampling_probs(logits, temperature, top_k=None, top_p=None):
    """(B, vocab) logits -> (B, vocab) probabilities: the softmax at temperature > 0,
    restricted to the top_k tokens and/or to the smallest set whose probability reaches
    top_p (the rest get 0)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"sampling needs a finite temperature > 0, got {temperature}")
    logits = logits.float() / temperature
    if top_k is not None:
        kth_best = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        outside = probs.cumsum(dim=-1) - probs >= top_p  # mass before it already reaches top_p
        sorted_logits = sorted_logits.masked_fill(outside, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits.softmax(dim=-1)


@torch.no_grad()
def generate(model: MiniDeepSeek, input_ids, max_new_tokens, temperature=0.0, top_k=None,
             top_p=None, eos_token_id=None, generator=None, absorb=True, document_ids=None):
    """Continue input_ids (B, T); returns (B, T + n) with n <= max_new_tokens (fewer only
    if every row has produced eos_token_id). absorb=False decodes with the naive path.
    document_ids (B, T), if given, mask attention as the model's argument of that name
    does (left_padded makes them); new tokens join the last document of their row.
    The model's train/eval mode is restored afterwards, even after an error."""
    _check_request(model, input_ids, max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    try:
        return _decode(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                       eos_token_id, generator, absorb, document_ids)
    finally:
        model.train(was_training)


def left_padded(prompts: list[list[int]], pad_id: int, device=None):
    """Prompts of different lengths as one batch: (ids (B, P), document_ids (B, P)), each
    prompt right-aligned after pad_id tokens, which are document 0 and the prompt document
    1. With the mask that document_ids give, every prompt continues exactly as it would
    alone (RoPE sees only distances), and all rows decode together."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    document_ids = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, device=device)
        document_ids[row, width - len(prompt):] = 1
    return ids, document_ids


def _decode(model, input_ids, max_new_tokens, temperature, top_k, top_p, eos_token_id,
            generator, absorb, document_ids=None):
    B, T = input_ids.shape
    cache = model.new_cache(B, T + max_new_tokens)
    logits = model(input_ids, cache=cache, absorb=False,  # prefill
                   document_ids=document_ids).logits[:, -1]
    tokens, done = [input_ids], torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    for step in range(max_new_tokens):
        next_token = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
        if eos_token_id is not None:
            next_token = next_token.masked_fill(done, eos_token_id)
            done |= next_token == eos_token_id
        tokens.append(next_token[:, None])
        if done.all() or step == max_new_tokens - 1:
            break
        if document_ids is not None:  # the new token continues its row's last document
            document_ids = torch.cat([document_ids, document_ids[:, -1:]], dim=1)
        logits = model(next_token[:, None], cache=cache, absorb=absorb,
                       document_ids=document_ids).logits[:, -1]
    return torch.cat(tokens, dim=1)


@dataclass
class SpeculativeResult:
    tokens: torch.Tensor  # (1, T + n): the prompt and the new tokens
    drafted: int  # MTP guesses checked by the main model
    accepted: int  # guesses the main model agreed with
    main_passes: int  # forward passes of the main model, prefill included

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


@torch.no_grad()
def speculative_generate(model: MiniDeepSeek, input_ids, max_new_tokens, eos_token_id=None,
                         temperature=0.0, top_k=None, top_p=None, generator=None):
    """Decoding with the first MTP module drafting one token ahead (batch of one).

    Greedy (temperature 0): a draft is kept when it is the main model's argmax, so the
    output is plain greedy decoding's, token for token. Sampling: the draft x is drawn
    from the MTP module's distribution q and kept with probability min(1, p(x) / q(x)),
    p the main model's; a rejected draft is replaced by a draw from max(0, p - q),
    renormalised (speculative sampling). Either way every token is distributed exactly
    as plain sampling from p (with the same temperature, top_k and top_p) would draw it."""
    _check_request(model, input_ids, max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    if input_ids.shape[0] != 1:
        raise ValueError(f"speculative decoding takes one sequence, got a batch of {input_ids.shape[0]}")
    if not model.mtp:
        raise ValueError("speculative decoding needs an MTP module (config.num_mtp_layers >= 1)")
    was_training = model.training
    model.eval()
    try:
        pick = _Picker(temperature, top_k, top_p, generator)
        return _speculative(model, input_ids, max_new_tokens, eos_token_id, pick)
    finally:
        model.train(was_training)


@dataclass
class _Picker:
    """Turns logits into the distribution decoding draws from, and draws."""

    temperature: float
    top_k: int | None
    top_p: float | None
    generator: torch.Generator | None

    def probs(self, logits):  # (n, vocab) -> (n, vocab); one-hot at temperature 0
        if self.temperature == 0:
            return torch.zeros_like(logits, dtype=torch.float).scatter_(
                -1, logits.argmax(-1, keepdim=True), 1.0)
        return sampling_probs(logits, self.temperature, self.top_k, self.top_p)

    def draw(self, probs) -> int:  # probs (vocab,)
        if self.temperature == 0:
            return int(probs.argmax())
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def uniform(self) -> float:
        """u ~ U(0, 1) for the acceptance test; 0 at temperature 0 (no draw: with
        one-hot p and q the test keeps a draft exactly when it is p's argmax)."""
        if self.temperature == 0:
            return 0.0
        device = None if self.generator is None else self.generator.device
        return torch.rand((), generator=self.generator, device=device).item()


def verify_draft(p, q, draft: int, u: float):
    """Speculative sampling's rule for one draft (p, q: (vocab,) the main model's and the
    drafter's distributions; draft ~ q; u ~ U(0, 1)). Returns (kept, dist): the draft is
    kept when u < p[draft] / q[draft], and dist is one-hot at it; otherwise dist is
    max(0, p - q) renormalised, what the draft under-sampled, to draw the token from.
    Averaged over draft ~ q and u, the token drawn from dist is distributed as p."""
    if u < p[draft] / q[draft]:
        return True, torch.zeros_like(p).scatter_(0, torch.tensor([draft], device=p.device), 1.0)
    residual = (p - q).clamp(min=0)
    return False, residual / residual.sum()


def _speculative(model, input_ids, max_new_tokens, eos_token_id, pick) -> SpeculativeResult:
    T = input_ids.shape[1]
    cache = model.new_cache(1, T + max_new_tokens)
    mtp_cache = model.new_cache(1, T + max_new_tokens, mtp=True)

    out = model(input_ids, cache=cache, absorb=False)
    new = [pick.draw(pick.probs(out.logits[0, -1:])[0])]  # t_T
    # MTP position i sees h_i and t_{i+1}; its output guesses t_{i+2}.
    q = pick.probs(_mtp_logits(model, mtp_cache, out.hidden,
                               [*input_ids[0, 1:].tolist(), new[0]]))[0]  # (vocab,)
    draft = pick.draw(q)
    drafted = accepted = 0
    main_passes = 1
    while len(new) < max_new_tokens and new[-1] != eos_token_id:
        # One pass over [last token, draft]: row 0 checks the draft, row 1 goes one further.
        step = torch.tensor([[new[-1], draft]], device=input_ids.device)
        out = model(step, cache=cache)
        main_passes += 1
        drafted += 1
        p = pick.probs(out.logits[0])  # (2, vocab)
        kept, dist = verify_draft(p[0], q, draft, pick.uniform())
        if kept:
            accepted += 1
            verified, hidden = [draft, pick.draw(p[1])], out.hidden
        else:
            verified, hidden = [pick.draw(dist)], out.hidden[:, :1]
            cache.crop(cache.length - 1)  # forget the rejected draft
        q = pick.probs(_mtp_logits(model, mtp_cache, hidden, verified))[0]
        draft = pick.draw(q)
        new += verified
    new = new[:max_new_tokens]
    if eos_token_id in new:
        new = new[: new.index(eos_token_id) + 1]
    tokens = torch.cat([input_ids, torch.tensor([new], device=input_ids.device)], dim=1)
    return SpeculativeResult(tokens, drafted, accepted, main_passes)


def _mtp_logits(model, mtp_cache, hidden, next_tokens) -> torch.Tensor:
    """Run the first MTP module on new positions (hidden (1, n, H), the n tokens that
    follow them) and return its logits (1, vocab) for the token after the last one."""
    start, n = mtp_cache.length, hidden.shape[1]
    cos, sin = model.rope_cos[start : start + n], model.rope_sin[start : start + n]
    ids = torch.tensor([next_tokens], device=hidden.device)
    _, logits, _ = model.mtp[0](hidden, ids, cos, sin, mtp_cache.layers[0], absorb=n == 1)
    return logits[:, -1]

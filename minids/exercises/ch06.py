"""Chapter 06's exercises: the MTP module, the MTP loss, the combined loss, the
speculative acceptance rule and the speculative decoding loop."""

import torch

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.generate import generate, speculative_generate
from minids.model import IGNORE_INDEX, MiniDeepSeek, cross_entropy

# 06.1 The MTP module: combine h^(k-1)_i with Emb(t_(i+k)), run the block, read out.

def mtp_module(module, h_prev, next_tokens, cos, sin, cache=None, absorb=False):
    """module, an MTPModule (its embed, enorm, hnorm, eh_proj, block, norm and head);
    h_prev (B, T, H): h^(k-1)_i; next_tokens (B, T): t_(i+k); cos, sin for the T
    positions; cache and absorb, passed on to the block -> (h^k (B, T, H), the logits
    for t_(i+k+1) (B, T, vocab), the block's balance loss): MTPModule.forward."""
    with torch.no_grad():
        return module(h_prev, next_tokens, cos, sin, cache, absorb)


def mtp_module_cases():
    cases = []
    for seed, (B, T) in enumerate(((2, 5), (1, 9))):
        with seeded(seed):
            model = MiniDeepSeek(ModelConfig.preset("tiny")).requires_grad_(False)
            for norm in (model.mtp[0].enorm, model.mtp[0].hnorm, model.mtp[0].norm):
                norm.weight.add_(randn(model.config.hidden_size, scale=0.3))
            h_prev = randn(B, T, model.config.hidden_size)
            next_tokens = torch.randint(0, model.config.vocab_size, (B, T))
        cases.append((model.mtp[0], h_prev, next_tokens, model.rope_cos[:T],
                      model.rope_sin[:T]))
    return cases


def _mtp(module, h_prev, next_tokens, cos, sin, cache=None, absorb=False,
         hidden_first=False, swap_norms=False, norms=True, final_norm=True):
    """The module with one thing changed, for the mistakes."""
    enorm, hnorm = (module.hnorm, module.enorm) if swap_norms else (module.enorm, module.hnorm)
    emb, h = module.embed(next_tokens), h_prev
    if norms:
        emb, h = enorm(emb), hnorm(h)
    x = torch.cat([h, emb] if hidden_first else [emb, h], dim=-1)
    x, balance = module.block(module.eh_proj(x), cos, sin, cache, absorb)
    h = module.norm(x) if final_norm else x
    return h, module.head(h), balance


MTP_MODULE_MISTAKES = {
    "minids (like the released V3 weights) puts the embedding first: "
    "M_k [RMSNorm(Emb(t_(i+k))) ; RMSNorm(h)], the report's formula writes h first":
        lambda *args: _mtp(*args, hidden_first=True),
    "normalise each input with its own norm: enorm for the embedding, hnorm for h":
        lambda *args: _mtp(*args, swap_norms=True),
    "normalise both inputs before concatenating (RMSNorm of each, not of neither)":
        lambda *args: _mtp(*args, norms=False),
    "h^k is the block's output after module.norm, and the head reads h^k":
        lambda *args: _mtp(*args, final_norm=False),
}


# 06.2 The MTP loss: which targets does depth k predict?

def mtp_loss(mtp_logits, targets, k):
    """mtp_logits (B, T - k, vocab) of MTP depth k; targets (B, T), the main model's
    next-token targets (IGNORE_INDEX where nothing is to be learned) -> the mean
    cross-entropy of depth k, a scalar tensor."""
    return cross_entropy(mtp_logits, targets[:, k:])


def mtp_loss_cases():
    with seeded(7):
        targets = torch.randint(0, 50, (3, 12))
        targets[0, :4] = IGNORE_INDEX  # e.g. a prompt in supervised fine-tuning
        return [
            (randn(2, 9, 32), torch.randint(0, 32, (2, 10)), 1),
            (randn(3, 10, 50), targets, 2),
            (randn(1, 5, 20), torch.randint(0, 20, (1, 8)), 3),
        ]


MTP_LOSS_MISTAKES = {
    "position i of depth k predicts t_(i+k+1) = targets[:, i + k]: drop the first k "
    "targets, not the last k": lambda logits, t, k: cross_entropy(logits, t[:, :-k]),
}


# 06.3 The combined training loss.

def combined_loss(main_loss, mtp_losses, mtp_lambda):
    """main_loss, a scalar tensor; mtp_losses, a list of D scalar tensors (depths 1..D);
    mtp_lambda, the weight lambda -> L_main + lambda / D * sum_k L_MTP^k."""
    return main_loss + mtp_lambda / len(mtp_losses) * sum(mtp_losses)


def combined_loss_cases():
    with seeded(9):
        return [
            (torch.tensor(2.5), [torch.tensor(3.1)], 0.3),
            (torch.tensor(1.2), [torch.tensor(1.9), torch.tensor(2.4)], 0.3),
            (torch.rand(()) * 3, [torch.rand(()) * 3 for _ in range(4)], 0.1),
        ]


COMBINED_LOSS_MISTAKES = {
    "average over the D depths: lambda / D times the sum, not lambda times the sum":
        lambda main, mtp, lam: main + lam * sum(mtp),
    "lambda weighs only the MTP losses; the main loss keeps weight 1":
        lambda main, mtp, lam: lam * (main + sum(mtp) / len(mtp)),
    "add the main loss: the MTP losses are extra signal, not a replacement":
        lambda main, mtp, lam: lam / len(mtp) * sum(mtp),
}


# 06.4 Greedy speculative decoding: how many drafted tokens does the main model accept?

def accepted_drafts(draft, main_argmax):
    """draft (n,): drafted tokens d_1..d_n; main_argmax (n,): the main model's greedy
    token at each drafted position, computed in one pass -> the number of drafts kept:
    the length of the longest prefix where draft equals main_argmax (an int)."""
    agree = (draft == main_argmax).long()
    return int(agree.cumprod(0).sum())


def accepted_drafts_cases():
    t = torch.tensor
    return [
        (t([5, 9, 2]), t([5, 9, 2])),
        (t([5, 9, 2, 7]), t([5, 1, 2, 7])),
        (t([4, 4]), t([3, 4])),
        (t([8]), t([8])),
        (t([1, 2, 3, 4, 5]), t([1, 2, 3, 0, 5])),
    ]


ACCEPTED_DRAFTS_MISTAKES = {
    "stop at the first disagreement: a draft after a rejected one was built on a wrong "
    "token, so it cannot be kept even if it matches":
        lambda d, m: int((d == m).sum()),
    "count the drafts that agree, not the ones that disagree":
        lambda d, m: int((d != m).long().cumprod(0).sum()),
}


# 06.5 The speculative decoding loop: draft with MTP, verify with one main pass.

def speculative_decode(model, input_ids, max_new_tokens):
    """model, a MiniDeepSeek with an MTP module; input_ids (1, T) -> (the tokens
    (1, T + max_new_tokens), the number of main-model forward passes, prefill included):
    greedy decoding where the first MTP module drafts the token after next and one
    main pass over [last token, draft] both verifies the draft and gives the next token
    (minids.generate.speculative_generate)."""
    result = speculative_generate(model, input_ids, max_new_tokens)
    return result.tokens, result.main_passes


def speculative_decode_cases():
    """Random tiny models: the first accepts 5 of 15 drafts, the second 3 of 17, the
    third none of 7."""
    cases = []
    for seed, new in ((1, 20), (2, 20), (0, 8)):
        with seeded(seed):
            model = MiniDeepSeek(ModelConfig.preset("tiny")).eval()
            cases.append((model, torch.randint(0, model.config.vocab_size, (1, 6)), new))
    return cases


SPECULATIVE_DECODE_MISTAKES = {
    "that is plain greedy decoding, one main pass per token: draft the token after next "
    "with model.mtp[0] and check it in the same main pass as the next token":
        lambda model, ids, n: (generate(model, ids, n), n),
}


EXERCISES = [
    Exercise("06.1", "the MTP module", mtp_module_cases, mtp_module, MTP_MODULE_MISTAKES),
    Exercise("06.2", "MTP loss of depth k", mtp_loss_cases, mtp_loss, MTP_LOSS_MISTAKES),
    Exercise("06.3", "the combined training loss", combined_loss_cases, combined_loss,
             COMBINED_LOSS_MISTAKES),
    Exercise("06.4", "greedy speculative acceptance", accepted_drafts_cases,
             accepted_drafts, ACCEPTED_DRAFTS_MISTAKES),
    Exercise("06.5", "the speculative decoding loop", speculative_decode_cases,
             speculative_decode, SPECULATIVE_DECODE_MISTAKES),
]

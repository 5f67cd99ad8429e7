"""Chapter 06's exercises: the MTP loss, the MTP module's input, the combined loss and
the speculative acceptance rule."""

import torch
from torch import nn

from minids.config import ModelConfig
from minids.exercises.checker import Exercise
from minids.exercises.common import randn, seeded
from minids.model import IGNORE_INDEX, cross_entropy
from minids.mtp import MTPModule

# 06.1 The MTP loss: which targets does depth k predict?

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


# 06.2 The MTP module's input: normalise both, concatenate [embedding ; hidden], project.

def mtp_input(h_prev, next_emb, enorm_weight, hnorm_weight, proj_weight, eps):
    """h_prev (B, T, H): h^{k-1}_i; next_emb (B, T, H): Emb(t_{i+k}); enorm_weight,
    hnorm_weight (H,); proj_weight (H, 2H), M_k; eps -> h'_i (B, T, H)."""
    H = h_prev.shape[-1]
    config = ModelConfig.preset("tiny", hidden_size=H, rms_norm_eps=eps)
    module = MTPModule(config, nn.Identity(), nn.Embedding(1, H), nn.Linear(H, 1))
    with torch.no_grad():
        module.enorm.weight.copy_(enorm_weight)
        module.hnorm.weight.copy_(hnorm_weight)
        module.eh_proj.weight.copy_(proj_weight)
        return module.eh_proj(torch.cat([module.enorm(next_emb), module.hnorm(h_prev)], -1))


def mtp_input_cases():
    with seeded(8):
        cases = []
        for shape in ((2, 5, 16), (1, 7, 32)):
            H = shape[-1]
            cases.append((randn(*shape, scale=3.0), randn(*shape, scale=0.5),
                          1 + randn(H, scale=0.2), 1 + randn(H, scale=0.2),
                          randn(H, 2 * H, scale=0.2), 1e-6))
        return cases


def _norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


MTP_INPUT_MISTAKES = {
    "minids (like the released V3 weights) puts the embedding first: "
    "M_k [RMSNorm(Emb(t_(i+k))) ; RMSNorm(h)], the report's formula writes h first":
        lambda h, e, we, wh, m, eps: torch.cat([_norm(h, wh, eps), _norm(e, we, eps)], -1) @ m.T,
    "normalise each input with its own norm: enorm for the embedding, hnorm for h":
        lambda h, e, we, wh, m, eps: torch.cat([_norm(e, wh, eps), _norm(h, we, eps)], -1) @ m.T,
    "normalise both inputs before concatenating (RMSNorm of each, not of neither)":
        lambda h, e, we, wh, m, eps: torch.cat([e, h], -1) @ m.T,
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


EXERCISES = [
    Exercise("06.1", "MTP loss of depth k", mtp_loss_cases, mtp_loss, MTP_LOSS_MISTAKES),
    Exercise("06.2", "the MTP module's input", mtp_input_cases, mtp_input,
             MTP_INPUT_MISTAKES),
    Exercise("06.3", "the combined training loss", combined_loss_cases, combined_loss,
             COMBINED_LOSS_MISTAKES),
    Exercise("06.4", "greedy speculative acceptance", accepted_drafts_cases,
             accepted_drafts, ACCEPTED_DRAFTS_MISTAKES),
]

"""The mini DeepSeek-V3: embedding, pre-norm blocks of MLA + (dense FFN or DeepSeekMoE),
a final norm, the output head, and D Multi-Token Prediction modules for training.

Training loss = main next-token loss + (lambda / D) * sum of MTP losses
              + sum over MoE layers of the sequence-wise balance loss.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minids.config import ModelConfig
from minids.layers import MLP, RMSNorm
from minids.cache import KVCache, LayerCache
from minids.gqa import GQA
from minids.mla import MLA, document_mask
from minids.moe import DeepSeekMoE, Experts, Router
from minids.mtp import MTPModule
from minids.rope import inv_freq_for, rope_cos_sin

IGNORE_INDEX = -100  # targets with this value add nothing to the loss (e.g. SFT prompts)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_id: int):
        super().__init__()
        H = config.hidden_size
        self.attn_norm = RMSNorm(H, config.rms_norm_eps)
        self.attn = MLA(config) if config.attention == "mla" else GQA(config)
        self.ffn_norm = RMSNorm(H, config.rms_norm_eps)
        self.is_moe = config.is_moe_layer(layer_id)
        self.ffn = DeepSeekMoE(config) if self.is_moe else MLP(H, config.intermediate_size)

    def forward(self, x, cos, sin, cache=None, absorb=False, with_balance=True, mask=None):
        """x (B, T, H) -> (x (B, T, H), this block's balance loss: 0 for a dense block,
        or with_balance=False, which skips it). mask: the attention's (default causal)."""
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, absorb, mask)
        h = self.ffn_norm(x)
        if self.is_moe:
            out, balance = self.ffn(h, with_balance)
        else:
            out, balance = self.ffn(h), x.new_zeros(())
        return x + out, balance


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, T, vocab)
    hidden: torch.Tensor  # (B, T, H): the final normalised hidden state (h^0 of MTP)
    loss: torch.Tensor | None = None  # main_loss + mtp_loss + balance_loss
    main_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None
    balance_loss: torch.Tensor | None = None


class MiniDeepSeek(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(Block(c, i) for i in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.mtp = nn.ModuleList(
            MTPModule(c, Block(c, c.num_hidden_layers + k), self.embed, self.head)
            for k in range(c.num_mtp_layers)
        )
        cos, sin = rope_cos_sin(c.max_position_embeddings,
                                inv_freq_for(c.rope_dim, c.rope_theta, c.rope_scaling))
        self.register_buffer("rope_cos", cos, persistent=False)  # (max_positions, rope_dim/2)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Every matrix ~ N(0, initializer_range); norms 1; routing biases 0."""
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=self.config.initializer_range)
            else:
                nn.init.ones_(p)
        for router in self.routers():
            router.bias.zero_()

    def forward(self, input_ids, targets=None, cache: KVCache | None = None, absorb=None,
                mtp_loss_weight: float | None = None, logits_to_keep: int = 0,
                document_ids=None):
        """input_ids (B, T). With a cache the tokens continue the cached ones and attention
        runs the absorbed path unless absorb=False. Targets (B, T) are the next tokens;
        mtp_loss_weight (λ) overrides the config's for this call (V3 lowers it late in
        training). logits_to_keep=n > 0 (without targets) computes the logits of the last
        n positions only, as transformers' argument of that name does. document_ids
        (B, cached + T), if given, say which document each position belongs to: a token
        attends only within its own (packed examples, left padding; see document_mask)."""
        check_token_ids(input_ids, self.config.vocab_size)
        if logits_to_keep < 0 or (logits_to_keep and targets is not None):
            raise ValueError(f"logits_to_keep must be >= 0, and 0 with targets, got "
                             f"{logits_to_keep}")
        B, T = input_ids.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(f"{start + T} positions exceed the context of "
                             f"{self.config.max_position_embeddings} (max_position_embeddings)")
        absorb = cache is not None if absorb is None else absorb
        cos, sin = self.rope_cos[start : start + T], self.rope_sin[start : start + T]
        if document_ids is not None and document_ids.shape != (B, start + T):
            raise ValueError(f"document_ids must be (batch, cached + new) = {(B, start + T)}, "
                             f"got {tuple(document_ids.shape)}")
        mask = None if document_ids is None else document_mask(document_ids, T)

        x = self.embed(input_ids)  # (B, T, H)
        balance = []
        for i, layer in enumerate(self.layers):
            x, layer_balance = layer(x, cos, sin, cache.layers[i] if cache else None, absorb,
                                     with_balance=targets is not None, mask=mask)
            balance.append(layer_balance)
        hidden = self.norm(x)
        logits = self.head(hidden[:, -logits_to_keep:])  # -0: every position
        if targets is None:
            return ModelOutput(logits=logits, hidden=hidden)

        main_loss = cross_entropy(logits, targets)
        mtp_losses, h = [], hidden
        for k, module in enumerate(self.mtp, start=1):
            if T - k < 1:
                break
            # Position i (< T - k) sees h^{k-1}_i and t_{i+k}, and predicts t_{i+k+1}.
            masked = ({} if mask is None else  # (exercise 06.1's module takes no mask)
                      {"mask": document_mask(document_ids[:, : T - k], T - k)})
            h, mtp_logits, layer_balance = module(h[:, :-1], input_ids[:, k:], cos[: T - k],
                                                  sin[: T - k], **masked)
            mtp_targets = targets[:, k:]
            if document_ids is not None:  # h_i and t_{i+k} from two packed examples: no target
                crosses = document_ids[:, : T - k] != document_ids[:, k:]  # (B, T - k)
                mtp_targets = mtp_targets.masked_fill(crosses, IGNORE_INDEX)
            mtp_losses.append(cross_entropy(mtp_logits, mtp_targets))
            balance.append(layer_balance)
        lam = self.config.mtp_loss_weight if mtp_loss_weight is None else mtp_loss_weight
        mtp_loss = (lam / len(self.mtp) * sum(mtp_losses)
                    if mtp_losses else hidden.new_zeros(()))
        balance_loss = sum(balance, hidden.new_zeros(()))
        return ModelOutput(
            logits=logits, hidden=hidden, loss=main_loss + mtp_loss + balance_loss,
            main_loss=main_loss, mtp_loss=mtp_loss, balance_loss=balance_loss,
        )

    def new_cache(self, batch_size: int, max_len: int | None = None, mtp: bool = False) -> KVCache:
        """An empty cache for the main layers (or, with mtp=True, the MTP blocks)."""
        blocks = [m.block for m in self.mtp] if mtp else self.layers
        ref = self.embed.weight
        return KVCache([
            LayerCache(batch_size, max_len or self.config.max_position_embeddings,
                       block.attn.cache_shapes(), device=ref.device, dtype=ref.dtype)
            for block in blocks
        ])

    def routers(self, mtp: bool = True) -> list[Router]:
        modules = self.modules() if mtp else self.layers.modules()
        return [m for m in modules if isinstance(m, Router)]

    def update_router_biases(self, gamma: float | None = None) -> list[torch.Tensor]:
        """Apply the sign rule in every MoE layer (call once per optimizer step).
        Returns each router's load over the step, for logging (e.g. MaxVio)."""
        gamma = self.config.bias_update_speed if gamma is None else gamma
        return [router.update_bias(gamma) for router in self.routers()]

    def num_params(self, active: bool = False, mtp: bool = False) -> int:
        """Parameters of the main model (plus the MTP modules if mtp=True). active=True
        counts what one token uses: only num_experts_per_tok of the routed experts."""
        total = sum(p.numel() for name, p in self.named_parameters()
                    if mtp or not name.startswith("mtp."))
        if active:
            c = self.config
            modules = self.modules() if mtp else self.layers.modules()
            for experts in (m for m in modules if isinstance(m, Experts)):
                per_expert = sum(p[0].numel() for p in experts.parameters())
                total -= (c.n_routed_experts - c.num_experts_per_tok) * per_expert
        return total


def check_token_ids(input_ids, vocab_size: int):
    """ValueError unless input_ids is a (batch, T) integer tensor, T >= 1, of ids in
    [0, vocab_size) (an id outside gives a cryptic index error, or on CUDA a device
    assert, deep inside the embedding)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or 0 in input_ids.shape:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be a (batch, T) tensor of token ids with batch, "
                         f"T >= 1, got {shape}")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got {input_ids.dtype}")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"token ids must be in [0, vocab_size={vocab_size}), got ids from "
                         f"{low} to {high}")


def cross_entropy(logits, targets):
    """Mean next-token loss, in at least fp32, over the targets that are not IGNORE_INDEX."""
    logits = logits.flatten(0, 1).to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX)

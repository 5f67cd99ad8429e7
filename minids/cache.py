"""The decoding cache: what each attention layer keeps per past token so that a new token
needs no recomputation of the old ones.

Each layer stores two tensors per token, preallocated to the longest sequence it will hold:
MLA keeps the normalised latent c (kv_lora_rank) and the rotated rope key (qk_rope_head_dim);
grouped-query attention keeps keys and values, (n_kv_heads, head_dim) each.
"""

import torch


class LayerCache:
    """One layer's cache: two (batch, max_len, *shape) tensors and how much of them is filled."""

    def __init__(self, batch_size, max_len, shapes, device=None, dtype=None):
        self.tensors = [torch.zeros(batch_size, max_len, *shape, device=device, dtype=dtype)
                        for shape in shapes]
        self.length = 0

    def append(self, *new: torch.Tensor):
        """Store T new tokens of each tensor; return everything cached so far, (B, S, ...)."""
        start, end = self.length, self.length + new[0].shape[1]
        if end > self.tensors[0].shape[1]:
            raise ValueError(f"cache holds {self.tensors[0].shape[1]} tokens, asked to hold {end}")
        for stored, values in zip(self.tensors, new):
            stored[:, start:end] = values
        self.length = end
        return tuple(stored[:, :end] for stored in self.tensors)

    def nbytes_per_token(self) -> int:
        return sum(t[0, 0].nbytes for t in self.tensors)


class KVCache:
    """The caches of a stack of layers, advanced and cropped together."""

    def __init__(self, layers: list[LayerCache]):
        self.layers = layers

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def crop(self, length: int):
        """Forget every token from `length` on (used to reject speculative tokens)."""
        for layer in self.layers:
            layer.length = min(layer.length, length)

    def nbytes_per_token(self) -> int:
        return sum(layer.nbytes_per_token() for layer in self.layers)

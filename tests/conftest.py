import dataclasses
import os

import pytest
import torch

import minids
from minids import MiniDeepSeek, ModelConfig

# One thread per test process: the suite runs as 2 xdist workers on 2 cores, and tiny
# matmuls on oversubscribed OpenMP threads run up to 100x slower.
torch.set_num_threads(1)

# Nothing is downloaded: the chapters' kernels inherit this, so `datasets` reads the local
# files at once instead of first waiting on the network.
for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(name, "1")


def tiny_config(**overrides) -> ModelConfig:
    return ModelConfig.preset("tiny", **overrides)


def tiny_model(seed=0, dtype=torch.float32, **overrides) -> MiniDeepSeek:
    minids.seed(seed)
    return MiniDeepSeek(tiny_config(**overrides)).to(dtype).eval()


def replace(config: ModelConfig, **changes) -> ModelConfig:
    return dataclasses.replace(config, **changes)


@pytest.fixture
def tokens():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 128, (2, 24), generator=generator)


def counting_batch(batch_size=16, length=32, vocab=128, generator=None):
    """Sequences t_{i+1} = t_i + step (mod vocab) with a random start and step in 1..4:
    learnable from two tokens, so a tiny model and its MTP head both learn them fast."""
    start = torch.randint(0, vocab, (batch_size, 1), generator=generator)
    step = torch.randint(1, 5, (batch_size, 1), generator=generator)
    return (start + step * torch.arange(length + 1)) % vocab


def train_briefly(model, steps=150, lr=1e-2, seed=0):
    """A few AdamW steps on counting sequences; returns the list of losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95))
    model.train()
    losses = []
    for _ in range(steps):
        batch = counting_batch(generator=generator)
        out = model(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        model.update_router_biases()
        losses.append(out.main_loss.item())
    return losses


@pytest.fixture(scope="session")
def trained_tiny():
    model = tiny_model()
    losses = train_briefly(model)
    return model.eval(), losses

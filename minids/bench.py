"""python -m minids bench: how fast a preset trains on this machine, and whether the
architecture pays for itself.

Three measurements, all in one run so that they share the machine's state:

1. The matmul peaks: the best FP32 and BF16 FLOP/s of one `torch.mm` on this device
   (square matrices of a few sizes, best of several repeats).
2. Training throughput, in FP32 and with BF16 autocast (`precision="bf16"`): tokens/s of
   the real training step (`Trainer.train_step`: forward, backward, AdamW, bias update)
   and the model FLOP/s it implies: MFU = the step's FLOPs (counted from the config,
   `training_flops`) / step time / the matmul peak of that precision.
3. Equal wall-clock: the model, the same model without its MTP modules, and a dense
   baseline with the same active parameters per token (multi-head attention, dense SwiGLU
   in every layer, no MTP) each train for the same number of seconds; we compare their
   validation loss (of the main model: next-token prediction). Each run's step count is
   fixed up front from its measured step time, so every run is deterministic.

   Why the middle contender: an MTP module is one more block and one more pass through
   the output head. In V3 (61 layers, 37B active parameters) that is a few per cent of a
   step; in the 4-layer book model it is half again as much work per step, bought for a
   training signal that pays off at scale (chapter 06). Without MTP the comparison is
   MLA + DeepSeekMoE against multi-head attention + a dense FFN, the architecture alone.
"""

import dataclasses
import tempfile
import time

import torch

from minids.config import ModelConfig
from minids.model import MiniDeepSeek
from minids.moe import Experts
from minids.train import TRAIN_PRESETS, TrainConfig, Trainer


def matmul_peak(device, sizes=(512, 1024, 2048), repeats=5, dtype=torch.float32) -> float:
    """The best FLOP/s of a (n x n) @ (n x n) matmul in dtype over the sizes given."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm up the kernel and the allocator
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            a @ b
            _synchronize(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def training_flops(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    """FLOPs of one training step on batch_size rows of seq_len tokens, forward + backward
    (= 3 x forward; the optimizer's elementwise work is not counted). Forward: 2 FLOPs per
    multiply-add of every weight matrix a token passes through (of the routed experts, only
    the num_experts_per_tok it is sent to) and of attention's Q K^T and P V, counted over
    the full T x T scores as the kernels compute them (the convention of PaLM's MFU)."""
    c = config
    with torch.device("meta"):
        model = MiniDeepSeek(c)
    if c.attention == "mla":
        score_width = c.num_attention_heads * (c.qk_head_dim + c.v_head_dim)
    else:
        score_width = 2 * c.num_attention_heads * c.head_dim

    def block_flops(block, n):  # one block over n tokens of each row
        return 2 * batch_size * n * (_active_matrix_params(block, c) + n * score_width)

    head = model.head.weight.numel()
    forward = sum(block_flops(layer, seq_len) for layer in model.layers)
    forward += 2 * batch_size * seq_len * head
    for k, module in enumerate(model.mtp, start=1):  # depth k predicts from T - k positions
        n = seq_len - k
        forward += block_flops(module.block, n) + 2 * batch_size * n * (module.eh_proj.weight.numel() + head)
    return 3 * forward


def throughput(trainer: Trainer, steps: int, warmup: int = 2) -> float:
    """Seconds per training step: the median over `steps` steps after `warmup`."""
    for _ in range(warmup):
        trainer.train_step()
    times = []
    for _ in range(steps):
        _synchronize(trainer.device)
        start = time.perf_counter()
        trainer.train_step()
        _synchronize(trainer.device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def dense_baseline(config: ModelConfig) -> ModelConfig:
    """The dense yardstick: multi-head attention (head_dim = hidden / heads), a dense SwiGLU
    in every layer and no MTP, with the FFN width chosen so that its parameter count matches
    the active parameters per token of `config`'s main model (to a multiple of 8)."""
    dense = dataclasses.replace(config, attention="gqa",
                                num_key_value_heads=config.num_attention_heads,
                                n_routed_experts=0, num_mtp_layers=0, q_lora_rank=None)
    target = _count_params(config, active=True)
    at_8 = _count_params(dataclasses.replace(dense, intermediate_size=8))
    per_width = (_count_params(dataclasses.replace(dense, intermediate_size=16)) - at_8) / 8
    width = 8 * round((8 + (target - at_8) / per_width) / 8)
    if width < 8:
        raise ValueError(f"no dense baseline matches {target:,} active parameters: multi-head "
                         f"attention and the embeddings alone have more")
    return dataclasses.replace(dense, intermediate_size=width)


def equal_time_runs(configs: dict, train_config: TrainConfig, train_tokens, val_tokens,
                    seconds: float, device) -> dict:
    """Train each named config for about `seconds` of wall-clock time; return per name the
    steps, measured seconds and final validation loss."""
    results = {}
    for name, config in configs.items():
        with tempfile.TemporaryDirectory() as probe_dir:
            probe = Trainer(config, dataclasses.replace(train_config, progress=False),
                            train_tokens, val_tokens, probe_dir, device)
            seconds_per_step = throughput(probe, steps=5)
        steps = max(1, int(seconds / seconds_per_step))
        run_config = dataclasses.replace(train_config, steps=steps, eval_every=steps,
                                         checkpoint_every=steps)
        with tempfile.TemporaryDirectory() as out_dir:
            trainer = Trainer(config, run_config, train_tokens, val_tokens, out_dir, device)
            start = time.perf_counter()
            while trainer.step < steps:
                trainer.train_step()
                trainer.step += 1
            elapsed = time.perf_counter() - start
            results[name] = {"steps": steps, "seconds": elapsed,
                             "val_loss": trainer.evaluate()["val_loss"],
                             "active_params": _count_params(config, active=True)}
    return results


def run(preset: str, train_tokens, val_tokens, device, seconds: float, model_config=None,
        report=print) -> dict:
    """Every measurement of the module docstring for one preset; `report` gets each line
    as it is measured."""
    config = model_config or ModelConfig.preset(preset)
    train_config = TrainConfig(**{**TRAIN_PRESETS[preset], "progress": False, "eval_batches": 16})
    seq_len = train_tokens.shape[1] - 1
    tokens_per_step = train_config.batch_size * seq_len
    flops = training_flops(config, train_config.batch_size, seq_len)
    speed = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak(device, dtype=dtype)
        report(f"matmul peak, {precision}: {peak / 1e9:.1f} GFLOP/s "
               f"({torch.get_num_threads()} threads, {device})")
        with tempfile.TemporaryDirectory() as out_dir:
            trainer = Trainer(config, dataclasses.replace(train_config, precision=precision),
                              train_tokens, val_tokens, out_dir, device)
            seconds_per_step = throughput(trainer, steps=10)
        mfu = flops / seconds_per_step / peak
        speed[precision] = {"matmul_peak_flops": peak, "seconds_per_step": seconds_per_step,
                            "tokens_per_s": tokens_per_step / seconds_per_step, "mfu": mfu}
        report(f"training, {precision}: {seconds_per_step * 1e3:.0f} ms/step, "
               f"{tokens_per_step / seconds_per_step:,.0f} tokens/s, "
               f"{flops / seconds_per_step / 1e9:.1f} GFLOP/s = {mfu:.0%} of the {precision} "
               "matmul peak")
    report(f"bf16 autocast: {speed['fp32']['seconds_per_step'] / speed['bf16']['seconds_per_step']:.2f}x "
           "the fp32 tokens/s")

    dense = dense_baseline(config)
    report(f"equal wall-clock ({seconds:.0f} s each): {preset} "
           f"({_count_params(config, active=True):,} active params) vs dense "
           f"({_count_params(dense):,} params, FFN width {dense.intermediate_size})")
    contenders = {preset: config}
    if config.num_mtp_layers:
        contenders[f"{preset}_no_mtp"] = dataclasses.replace(config, num_mtp_layers=0)
    contenders["dense"] = dense
    runs = equal_time_runs(contenders, train_config, train_tokens, val_tokens, seconds, device)
    width = max(map(len, runs))
    for name, result in runs.items():
        report(f"  {name:>{width}}: {result['steps']} steps in {result['seconds']:.0f} s, "
               f"val loss {result['val_loss']:.3f}")
    return {"preset": preset, "device": str(device), "threads": torch.get_num_threads(),
            "step_flops": flops, **speed["fp32"], "bf16": speed["bf16"],
            "equal_time_seconds": seconds, "runs": runs}


def _count_params(config: ModelConfig, active: bool = False) -> int:
    """Parameters of the main model (no MTP), built on the meta device: no memory used."""
    with torch.device("meta"):
        return MiniDeepSeek(config).num_params(active=active)


def _active_matrix_params(module: torch.nn.Module, config: ModelConfig) -> int:
    """Weights of the matrices in module that one token multiplies: all of them, except
    that of each routed-expert bank (E, ., .) only num_experts_per_tok experts count."""
    total = 0
    for submodule in module.modules():
        for p in submodule.parameters(recurse=False):
            if p.dim() < 2:
                continue
            if isinstance(submodule, Experts):
                total += config.num_experts_per_tok * p[0].numel()
            else:
                total += p.numel()
    return total


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)

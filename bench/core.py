"""Benchmark of the minids core against transformers' DeepseekV3ForCausalLM.

    python -m bench.core            # about a minute on 2 idle CPU cores
    python -m bench.core --quick    # a smoke run with fewer repeats, about 20 s

Everything runs on the `book` preset, fp32, on the CPU with torch.set_num_threads(2) and
minids.seed(0). The transformers model is built by `minids.hf.to_hf` from a minids model
with the same weights (and is tested elsewhere to give the same logits).

1. Training step: forward + backward + AdamW step on one fixed batch of 8 x 256 tokens.
   - minids, num_mtp_layers=0: next-token loss + sequence-wise balance loss. transformers'
     model has no MTP, so this is the apples-to-apples headline.
   - minids as configured (one MTP module): its loss adds the MTP loss.
   - transformers: model(input_ids=ids, labels=ids).loss (it shifts the labels itself).
   The router-bias update after each step is not timed (transformers has none).
2. Decode throughput, batch 1, greedy: a context of 512 or 2048 tokens is prefilled once
   (not timed); then a block of single-token steps is timed, and the cache is cropped back
   to the context before the next block, so every block decodes the same tokens.
   - minids absorbed and naive paths, both reading minids' latent cache;
   - transformers with a DynamicCache (past_key_values).
   The preset's RoPE table is only 512 positions, so decoding uses
   ModelConfig.preset("book", max_position_embeddings=4096): same weights and shapes.
3. Cache bytes per token, all layers, fp32: minids' latent cache, what transformers'
   DynamicCache actually holds after a forward, and two multi-head attention baselines
   (the standard one also measured on minids' own MHA, config attention="gqa").

The contenders of a section take turns, one step or block each per round, so a burst of
load on a shared machine hits all of them alike; figures are medians over the timed
rounds, after warmup rounds. Results print as tables and go to bench/results/core.json.
"""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import minids
from minids import MiniDeepSeek, ModelConfig
from minids.hf import to_hf

THREADS = 2
PRESET = "book"
DECODE_POSITIONS = 4096  # RoPE table for decoding at long context
BATCH, SEQ_LEN = 8, 256
CONTEXTS = (512, 2048)
TRAIN_TARGET, DECODE_TARGET = 2.0, 2.0  # minids vs transformers; absorbed vs naive at 2048
FULL = dict(train_warmup=2, train_repeats=15, decode_tokens=32, decode_warmup=1,
            decode_repeats=15)
QUICK = dict(train_warmup=1, train_repeats=2, decode_tokens=8, decode_warmup=1,
             decode_repeats=2)
DEFAULT_OUT = Path(__file__).parent / "results" / "core.json"


def run_rounds(steps: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Call each step once per round, in turn; each returns the seconds it measured.
    Returns, per step, the seconds of the rounds after the warmup ones."""
    seconds = {name: [] for name in steps}
    for round_index in range(warmup + repeats):
        for name, step in steps.items():
            elapsed = step()
            if round_index >= warmup:
                seconds[name].append(elapsed)
    return seconds


def build_minids(**overrides) -> MiniDeepSeek:
    """A freshly seeded book model: the same main weights whatever the overrides
    (MTP parameters are initialised after all the others)."""
    minids.seed(0)
    return MiniDeepSeek(ModelConfig.preset(PRESET, **overrides))


# 1. Training step.

def training_step(model: torch.nn.Module, loss_of_batch) -> Callable[[], float]:
    """A step function: forward + backward + AdamW step, returning its seconds."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def step() -> float:
        start = time.perf_counter()
        loss = loss_of_batch()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def bench_training(settings: dict) -> dict:
    ids = torch.randint(0, ModelConfig.preset(PRESET).vocab_size, (BATCH, SEQ_LEN + 1),
                        generator=torch.Generator().manual_seed(0))
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, SEQ_LEN) each
    no_mtp, with_mtp = build_minids(num_mtp_layers=0), build_minids()
    hf = to_hf(no_mtp)
    steps = {
        "minids_no_mtp": training_step(no_mtp, lambda: no_mtp(inputs, targets).loss),
        "minids_mtp": training_step(with_mtp, lambda: with_mtp(inputs, targets).loss),
        "transformers": training_step(hf, lambda: hf(input_ids=inputs, labels=inputs).loss),
    }
    seconds = run_rounds(steps, settings["train_warmup"], settings["train_repeats"])
    ms = {name: 1e3 * statistics.median(s) for name, s in seconds.items()}
    speedup = ms["transformers"] / ms["minids_no_mtp"]
    return {
        "batch": BATCH, "seq_len": SEQ_LEN, "optimizer": "AdamW(lr=3e-4)",
        "warmup": settings["train_warmup"], "repeats": settings["train_repeats"],
        "ms_per_step": ms,
        "all_ms": {name: [round(1e3 * x, 1) for x in s] for name, s in seconds.items()},
        "speedup_vs_transformers": speedup,
        "speedup_vs_transformers_with_mtp": ms["transformers"] / ms["minids_mtp"],
        "transformers_experts_implementation": hf.config._experts_implementation,
        "transformers_attn_implementation": hf.config._attn_implementation,
        "target": TRAIN_TARGET, "target_met": speedup >= TRAIN_TARGET,
    }


# 2. Decode throughput.

def greedy(logits: torch.Tensor) -> torch.Tensor:
    """(B, T, vocab) -> the next token of each row, (B, 1)."""
    return logits[:, -1].argmax(dim=-1, keepdim=True)


class Decoder:
    """Greedy decoding from a prefilled cache. A call resets the cache to the context,
    decodes n_tokens one at a time and returns the seconds the decode steps took."""

    def __init__(self, next_token, reset, first_token, n_tokens: int):
        self.next_token, self.reset = next_token, reset
        self.first_token, self.n_tokens = first_token, n_tokens
        self.tokens = []  # the tokens of the last call, to check the contenders agree

    def __call__(self) -> float:
        self.reset()
        tokens = [self.first_token]
        start = time.perf_counter()
        for _ in range(self.n_tokens):
            tokens.append(self.next_token(tokens[-1]))
        elapsed = time.perf_counter() - start
        self.tokens = torch.cat(tokens, dim=1)[0].tolist()
        return elapsed


def minids_decoders(model, prompt, n_tokens: int) -> dict[str, Decoder]:
    """Absorbed and naive decoding, sharing one latent cache prefilled with the prompt."""
    context = prompt.shape[1]
    cache = model.new_cache(1, context + n_tokens)
    first = greedy(model(prompt, cache=cache, absorb=False).logits)

    def next_token(absorb: bool):
        return lambda token: greedy(model(token, cache=cache, absorb=absorb).logits)

    def reset():
        cache.crop(context)

    return {"minids_absorbed": Decoder(next_token(True), reset, first, n_tokens),
            "minids_naive": Decoder(next_token(False), reset, first, n_tokens)}


def transformers_decoder(hf, prompt, n_tokens: int) -> dict[str, Decoder]:
    """Decoding through a DynamicCache (past_key_values) prefilled with the prompt."""
    from transformers import DynamicCache

    context = prompt.shape[1]
    cache = DynamicCache(config=hf.config)
    first = greedy(hf(input_ids=prompt, past_key_values=cache, use_cache=True).logits)

    def next_token(token):
        return greedy(hf(input_ids=token, past_key_values=cache, use_cache=True).logits)

    def reset():
        cache.crop(context - cache.get_seq_length())  # crop takes minus the excess

    return {"transformers": Decoder(next_token, reset, first, n_tokens)}


@torch.no_grad()
def bench_decode(settings: dict) -> dict:
    model = build_minids(max_position_embeddings=DECODE_POSITIONS).eval()
    hf = to_hf(model)
    n_tokens = settings["decode_tokens"]
    results = {}
    for context in CONTEXTS:
        prompt = torch.randint(0, model.config.vocab_size, (1, context),
                               generator=torch.Generator().manual_seed(context))
        decoders = {**minids_decoders(model, prompt, n_tokens),
                    **transformers_decoder(hf, prompt, n_tokens)}
        seconds = run_rounds(decoders, settings["decode_warmup"], settings["decode_repeats"])
        tokens_per_s = {name: n_tokens / statistics.median(s) for name, s in seconds.items()}
        results[str(context)] = {
            "tokens_per_s": tokens_per_s,
            "absorbed_over_naive": tokens_per_s["minids_absorbed"] / tokens_per_s["minids_naive"],
            "absorbed_over_transformers":
                tokens_per_s["minids_absorbed"] / tokens_per_s["transformers"],
            "same_tokens": len({tuple(d.tokens) for d in decoders.values()}) == 1,
            "all_block_s": {name: [round(x, 4) for x in s] for name, s in seconds.items()},
        }
    ratio = results[str(CONTEXTS[-1])]["absorbed_over_naive"]
    return {
        "batch": 1, "new_tokens_per_block": n_tokens, "max_position_embeddings": DECODE_POSITIONS,
        "warmup": settings["decode_warmup"], "repeats": settings["decode_repeats"],
        "contexts": results, "target": DECODE_TARGET, "target_met": ratio >= DECODE_TARGET,
    }


# 3. Cache bytes per token.

@torch.no_grad()
def transformers_cache(hf, n_tokens: int = 64) -> dict:
    """Bytes per token, and the tensor shapes, that a DynamicCache holds after a forward."""
    from transformers import DynamicCache

    cache = DynamicCache(config=hf.config)
    hf(input_ids=torch.zeros(1, n_tokens, dtype=torch.long), past_key_values=cache,
       use_cache=True)
    nbytes = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    first = cache.layers[0]
    return {"bytes_per_token": nbytes // n_tokens, "tokens": n_tokens,
            "layer_0_shapes": {"keys": list(first.keys.shape),
                               "values": list(first.values.shape)}}


def bench_cache() -> dict:
    model = build_minids().eval()
    c = model.config
    floats = 4  # bytes in an fp32 number
    latent = model.new_cache(1, 1).nbytes_per_token()
    mha_model = MiniDeepSeek(ModelConfig.preset(PRESET, attention="gqa"))  # minids' own MHA
    mha_same_dims = c.num_hidden_layers * c.num_attention_heads * (c.qk_head_dim + c.v_head_dim)
    mha_standard = c.num_hidden_layers * 2 * c.hidden_size  # K, V with head_dim = H / heads
    hf = transformers_cache(to_hf(model))
    return {
        "layers": c.num_hidden_layers,
        "bytes_per_token": {
            "minids_latent": latent,
            "transformers_dynamic_cache": hf["bytes_per_token"],
            "mha_same_head_dims": mha_same_dims * floats,
            "mha_standard": mha_standard * floats,
            "minids_mha_baseline": mha_model.new_cache(1, 1).nbytes_per_token(),
        },
        "transformers_layer_0_shapes": hf["layer_0_shapes"],
        "definitions": {
            "minids_latent": f"c ({c.kv_lora_rank}) + k_rope ({c.qk_rope_head_dim}) per layer",
            "mha_same_head_dims": f"K {c.num_attention_heads} x {c.qk_head_dim} + "
                                  f"V {c.num_attention_heads} x {c.v_head_dim} per layer",
            "mha_standard": f"K and V {c.num_attention_heads} x "
                            f"{c.hidden_size // c.num_attention_heads} per layer",
            "minids_mha_baseline": "minids with attention='gqa' (MHA), measured",
        },
    }


# The machine, the tables, the command line.

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    import transformers

    return {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "transformers": transformers.__version__,
        "python": platform.python_version(), "load_average": list(os.getloadavg()),
    }


def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    cells = [headers] + [[str(x) for x in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join("  " + line for line in lines)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report_machine(m: dict, config: ModelConfig, n_params: int) -> str:
    load = " ".join(f"{x:.2f}" for x in m["load_average"])
    return (f"minids core benchmark: preset {PRESET!r} ({n_params / 1e6:.1f}M parameters "
            f"without MTP), fp32\n"
            f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), torch {m['torch']} with "
            f"{m['torch_threads']} threads (torch.set_num_threads), transformers "
            f"{m['transformers']}, Python {m['python']}\n"
            f"load average at start (1, 5, 15 min): {load}\n"
            f"config: hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
            f"{config.num_attention_heads} heads, {config.n_routed_experts} routed experts "
            f"(top {config.num_experts_per_tok}), vocab {config.vocab_size}")


def report_training(t: dict) -> str:
    ms, all_ms = t["ms_per_step"], t["all_ms"]
    labels = {
        "minids_no_mtp": "minids, num_mtp_layers=0 (main + balance loss)",
        "minids_mtp": "minids, 1 MTP module (main + MTP + balance loss)",
        "transformers": f"transformers DeepseekV3ForCausalLM "
                        f"({t['transformers_attn_implementation']}, experts "
                        f"{t['transformers_experts_implementation']})",
    }
    rows = [[label, f"{ms[name]:.0f}", f"{min(all_ms[name]):.0f}-{max(all_ms[name]):.0f}",
             f"{ms['transformers'] / ms[name]:.2f}x"] for name, label in labels.items()]
    return (f"1. Training step: batch {t['batch']} x {t['seq_len']} tokens, forward + backward "
            f"+ {t['optimizer']}; median of {t['repeats']} after {t['warmup']} warmup\n"
            + table(["model", "ms/step", "min-max", "speed vs transformers"], rows)
            + f"\n  headline (no MTP, apples to apples): minids is "
              f"{t['speedup_vs_transformers']:.2f}x as fast as transformers "
              f"(target >= {t['target']:.0f}x: {verdict(t['target_met'])})")


def report_decode(d: dict) -> str:
    rows = []
    for context, r in d["contexts"].items():
        tps = r["tokens_per_s"]
        rows.append([context, f"{tps['minids_absorbed']:.1f}", f"{tps['minids_naive']:.1f}",
                     f"{tps['transformers']:.1f}", f"{r['absorbed_over_naive']:.2f}x",
                     f"{r['absorbed_over_transformers']:.2f}x",
                     "yes" if r["same_tokens"] else "NO"])
    headers = ["context", "minids absorbed", "minids naive", "transformers",
               "absorbed/naive", "absorbed/transformers", "same tokens"]
    last = list(d["contexts"])[-1]
    return (f"2. Decode, batch 1, greedy, tokens/s: {d['new_tokens_per_block']} new tokens per "
            f"timed block (prefill not timed); median of {d['repeats']} after {d['warmup']} "
            f"warmup\n  RoPE table of {d['max_position_embeddings']} positions "
            f"(preset {PRESET!r} with max_position_embeddings={d['max_position_embeddings']}: "
            f"same weights)\n"
            + table(headers, rows)
            + f"\n  absorbed/naive at {last}: {d['contexts'][last]['absorbed_over_naive']:.2f}x "
              f"(target >= {d['target']}x: {verdict(d['target_met'])})")


def report_cache(c: dict) -> str:
    b, labels = c["bytes_per_token"], c["definitions"]
    latent = b["minids_latent"]
    shapes = c["transformers_layer_0_shapes"]
    rows = [
        [f"minids latent cache: {labels['minids_latent']}", latent, "1.0x"],
        [f"transformers DynamicCache, measured: keys {shapes['keys']} (latent), "
         f"values {shapes['values']} (k_rope)", b["transformers_dynamic_cache"],
         f"{b['transformers_dynamic_cache'] / latent:.1f}x"],
        [f"MHA, same head dims: {labels['mha_same_head_dims']}", b["mha_same_head_dims"],
         f"{b['mha_same_head_dims'] / latent:.1f}x"],
        [f"standard MHA: {labels['mha_standard']}", b["mha_standard"],
         f"{b['mha_standard'] / latent:.1f}x"],
        [labels["minids_mha_baseline"], b["minids_mha_baseline"],
         f"{b['minids_mha_baseline'] / latent:.1f}x"],
    ]
    return (f"3. Cache bytes per token, all {c['layers']} layers, fp32\n"
            + table(["cache", "bytes/token", "vs latent"], rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    settings = QUICK if args.quick else FULL
    start = time.perf_counter()

    config = ModelConfig.preset(PRESET)
    n_params = build_minids(num_mtp_layers=0).num_params()
    results = {"machine": machine(), "preset": PRESET, "config": config.to_dict(),
               "num_params_without_mtp": n_params, "quick": args.quick, "settings": settings}
    print(report_machine(results["machine"], config, n_params), end="\n\n", flush=True)
    results["training"] = bench_training(settings)
    print(report_training(results["training"]), end="\n\n", flush=True)
    results["decode"] = bench_decode(settings)
    print(report_decode(results["decode"]), end="\n\n", flush=True)
    results["cache"] = bench_cache()
    print(report_cache(results["cache"]), end="\n\n")

    results["seconds_total"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"total {results['seconds_total']:.0f} s; results written to {args.out}")


if __name__ == "__main__":
    main()

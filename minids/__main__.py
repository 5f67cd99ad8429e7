"""Command line: python -m minids {data,train,sft,grpo,export,generate,chat,bench} [flags].

Every stage writes a run folder (weights, config, tokenizer, log) that the next reads with
--checkpoint. A bad flag, a missing checkpoint or an over-long prompt prints one line
starting with "minids: error:" and exits with status 2 (usage) or 1 (everything else).
"""

import argparse
import sys
from pathlib import Path

import torch

DATA_DIR = Path("data")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        command = " ".join(self.prog.split()[1:])
        print(f"minids: error: {message} (see python -m minids {command} --help)".replace("  ", " "),
              file=sys.stderr)
        sys.exit(2)


def build_parser() -> Parser:
    parser = Parser(prog="minids", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data = commands.add_parser("data", help="generate the corpus, train the tokenizer, pack tokens")
    data.add_argument("--out", default=str(DATA_DIR), help="data folder (default: data)")
    data.add_argument("--seed", type=int, default=0)

    train = commands.add_parser("train", help="pretrain a model from scratch (or resume)")
    train.add_argument("--preset", default="book", help="tiny | book | small")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps")
    train.add_argument("--out", default=None, help="run folder (default: runs/<preset>)")
    train.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    train.add_argument("--fp8", action="store_true", help="emulated FP8 GEMMs")
    _add_common(train)

    for name, text in (("sft", "supervised fine-tuning of a pretrained checkpoint"),
                       ("grpo", "GRPO on math problems from an SFT checkpoint")):
        stage = commands.add_parser(name, help=text)
        stage.add_argument("--checkpoint", required=True, metavar="DIR")
        stage.add_argument("--steps", type=int, default=None)
        stage.add_argument("--out", default=None, help=f"run folder (default: runs/{name})")
        _add_common(stage)

    export = commands.add_parser("export", help="a release folder: bf16 weights, config, tokenizer, log")
    export.add_argument("--checkpoint", required=True, metavar="DIR")
    export.add_argument("--out", required=True, metavar="DIR")
    _add_common(export)

    for name, text in (("generate", "continue a prompt"), ("chat", "answer as the assistant")):
        stage = commands.add_parser(name, help=text)
        stage.add_argument("--checkpoint", required=True, metavar="DIR")
        stage.add_argument("--prompt", required=name == "generate", default=None)
        stage.add_argument("--max-new-tokens", type=int, default=200)
        stage.add_argument("--temperature", type=float, default=0.8)
        stage.add_argument("--top-k", type=int, default=50)
        stage.add_argument("--seed", type=int, default=0)
        _add_common(stage)

    bench = commands.add_parser("bench", help="training tokens/s, MFU, and validation loss "
                                "against a dense baseline at equal wall-clock time")
    bench.add_argument("--preset", default="book", help="tiny | book | small")
    bench.add_argument("--seconds", type=float, default=180.0,
                       help="training time of each model in the equal wall-clock comparison")
    bench.add_argument("--out", default=None, metavar="FILE", help="also write the figures as JSON")
    _add_common(bench)

    return parser


def _add_common(parser):
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--data", default=str(DATA_DIR), help="data folder (default: data)")


def run_data(args):
    from minids.data import prepare

    prepare(args.out, seed=args.seed)


def run_train(args):
    import json

    from minids.config import ModelConfig
    from minids.train import STATE_JSON, TRAIN_PRESETS, TrainConfig, Trainer

    tokenizer = load_tokenizer(Path(args.data))
    if args.resume:
        out = Path(args.resume)
        if not (out / STATE_JSON).is_file():
            raise FileNotFoundError(f"nothing to resume in {out} (no {STATE_JSON})")
        model_config = load_config(out)
        saved = json.loads((out / STATE_JSON).read_text())["train_config"]
        train_config = TrainConfig(**{**saved, "steps": args.steps or saved["steps"]})
    else:
        if args.preset not in TRAIN_PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
        out = Path(args.out or f"runs/{args.preset}")
        # the vocabulary is the tokenizer's (the tiny preset's 128 is for unit tests)
        model_config = ModelConfig.preset(args.preset, vocab_size=tokenizer.vocab_size)
        settings = {**TRAIN_PRESETS[args.preset], "fp8": args.fp8}
        train_config = TrainConfig(**{**settings, **({"steps": args.steps} if args.steps else {})})
    if tokenizer.vocab_size != model_config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model "
                         f"{model_config.vocab_size}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / "tokenizer.json")
    train_tokens, val_tokens = load_rows(args.data, model_config)
    Trainer(model_config, train_config, train_tokens, val_tokens, out, args.device,
            resume=bool(args.resume)).run()
    print(f"saved {out}")


def load_rows(data_dir, model_config):
    """The packed training and validation rows, re-cut to the model's context if the
    packed rows are longer."""
    from minids.data import load_tokens

    seq_len = min(load_tokens(data_dir, "val").shape[1] - 1, model_config.max_position_embeddings)
    return tuple(load_tokens(data_dir, split, seq_len) for split in ("train", "val"))


def run_bench(args):
    import json

    from minids import bench
    from minids.config import ModelConfig
    from minids.train import TRAIN_PRESETS, resolve_device

    if args.preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    tokenizer = load_tokenizer(Path(args.data))
    model_config = ModelConfig.preset(args.preset, vocab_size=tokenizer.vocab_size)
    train_tokens, val_tokens = load_rows(args.data, model_config)
    figures = bench.run(args.preset, train_tokens, val_tokens, resolve_device(args.device),
                        args.seconds, model_config)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))
        print(f"saved {args.out}")


def run_finetune(args):
    """sft or grpo: load the run given by --checkpoint, fine-tune it, save to --out."""
    if args.command == "sft":
        from minids.sft import SFTConfig as Config, sft as finetune
    else:
        from minids.grpo import GRPOConfig as Config, grpo as finetune

    model, tokenizer, _ = load_run(args)
    config = Config(**({"steps": args.steps} if args.steps else {}))
    out = Path(args.out or f"runs/{args.command}")
    finetune(model, tokenizer, config, out_dir=out)
    print(f"saved {out}")


def run_export(args):
    import shutil

    from minids.checkpoint import save
    from minids.train import LOG_FILE

    model, tokenizer, _ = load_run(args)
    out = save(model.cpu(), args.out, dtype=torch.bfloat16)
    tokenizer.save(out / "tokenizer.json")
    if (Path(args.checkpoint) / LOG_FILE).is_file():
        shutil.copy(Path(args.checkpoint) / LOG_FILE, out / LOG_FILE)
    size = (out / "model.safetensors").stat().st_size
    print(f"saved {out} ({size / 1e6:.1f} MB of bf16 weights)")


def run_generate(args):
    model, tokenizer, device = load_run(args)
    ids = torch.tensor([tokenizer.encode(args.prompt, bos=True)], device=device)
    out = generate(model, ids, args)
    print(tokenizer.decode(out[0].tolist(), skip_special_tokens=True))


def run_chat(args):
    model, tokenizer, device = load_run(args)
    questions = [args.prompt] if args.prompt else _ask_forever()
    for question in questions:
        ids = torch.tensor([tokenizer.chat_prompt(question)], device=device)
        out = generate(model, ids, args, eos_token_id=tokenizer.eos_id)
        print(tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True))


def _ask_forever():
    print("Ask a question (an empty line quits).")
    while question := input("> ").strip():
        yield question


def generate(model, ids, args, eos_token_id=None):
    import minids

    generator = torch.Generator(device=ids.device).manual_seed(args.seed)
    max_new = min(args.max_new_tokens, model.config.max_position_embeddings - ids.shape[1])
    if max_new < 1:
        raise ValueError(f"the prompt has {ids.shape[1]} tokens; the context holds "
                         f"{model.config.max_position_embeddings}")
    return minids.generate(model, ids, max_new, temperature=args.temperature,
                           top_k=args.top_k or None, eos_token_id=eos_token_id, generator=generator)


def load_config(folder: Path):
    from minids.checkpoint import load_config as load

    return load(folder)


def load_tokenizer(folder: Path):
    from minids.tokenizer import Tokenizer

    return Tokenizer.load(folder / "tokenizer.json")


def load_run(args):
    """The model and tokenizer of a run folder, on the chosen device."""
    from minids.checkpoint import load
    from minids.train import resolve_device

    device = resolve_device(args.device)
    folder = Path(args.checkpoint)
    model = load(folder, device=device).eval()
    tokenizer_folder = folder if (folder / "tokenizer.json").is_file() else Path(args.data)
    return model, load_tokenizer(tokenizer_folder), device


COMMANDS = {"data": run_data, "train": run_train, "sft": run_finetune, "grpo": run_finetune,
            "export": run_export, "generate": run_generate, "chat": run_chat, "bench": run_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"minids: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minids: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

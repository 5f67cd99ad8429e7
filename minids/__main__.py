"""Command line: python -m minids {data,train,sft,grpo,distill,export,generate,chat,...}.

Every stage writes a run folder (weights, config, tokenizer, log) that the next reads with
--checkpoint. A bad flag, a missing checkpoint or an over-long prompt prints one line
starting with "minids: error:" and exits with status 2 (usage) or 1 (everything else);
nothing that existed before is changed. A training stage refuses a folder that holds a run
(continue it with --resume, or pass --overwrite); Ctrl-C saves the step and exits 130.
"""

import argparse
import math
import sys
from pathlib import Path

import torch

DATA_DIR = Path("data")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def temperature(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


positive_int.__name__ = "integer >= 1"  # what argparse names in "invalid ... value"
non_negative_int.__name__ = "integer >= 0"
temperature.__name__ = "temperature"


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
    train.add_argument("--preset", default=None, help="tiny | book | small (default: book)")
    train.add_argument("--steps", type=positive_int, default=None, help="optimizer steps")
    train.add_argument("--out", default=None, help="run folder (default: runs/<preset>)")
    train.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    train.add_argument("--overwrite", action="store_true",
                       help="start again in an --out that holds a run (its files go)")
    train.add_argument("--fp8", action="store_true", help="emulated FP8 GEMMs")
    train.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                       help="fp32 (default) or bf16 autocast with fp32 weights")
    _add_common(train)

    for name, text in (("sft", "supervised fine-tuning of a pretrained checkpoint"),
                       ("grpo", "GRPO on math problems from an SFT checkpoint"),
                       ("distill", "SFT of a pretrained checkpoint on a teacher's "
                                   "accepted solutions (rejection sampling)")):
        stage = commands.add_parser(name, help=text)
        start = stage.add_mutually_exclusive_group(required=True)
        start.add_argument("--checkpoint", metavar="DIR", help="the model to start from")
        start.add_argument("--resume", metavar="DIR", help=f"continue the {name} run in DIR")
        stage.add_argument("--steps", type=positive_int, default=None)
        stage.add_argument("--out", default=None, help=f"run folder (default: runs/{name})")
        stage.add_argument("--overwrite", action="store_true",
                           help="start again in an --out that holds a run (its files go)")
        if name == "grpo":
            stage.add_argument("--shuffle-rewards", action="store_true",
                               help="the control run: rewards shuffled within each group")
        if name == "distill":
            stage.add_argument("--teacher", metavar="DIR", help="the model that writes the "
                               "solutions (needed unless --resume)")
            stage.add_argument("--samples", type=positive_int, default=4,
                               help="teacher replies per problem at most (default 4)")
            stage.add_argument("--temperature", type=temperature, default=0.7,
                               help="the teacher's sampling temperature (default 0.7, "
                                    "GRPO's)")
        _add_common(stage)

    export = commands.add_parser("export", help="a release folder: bf16 weights, config, "
                                 "tokenizer, log (or, with --hf, a transformers folder)")
    export.add_argument("--checkpoint", required=True, metavar="DIR")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--hf", action="store_true",
                        help="write a folder that transformers' AutoTokenizer and "
                             "AutoModelForCausalLM load")
    export.add_argument("--overwrite", action="store_true",
                        help="replace the model in an --out that holds one")
    _add_common(export)

    for name, text in (("generate", "continue a prompt"), ("chat", "answer as the assistant")):
        stage = commands.add_parser(name, help=text)
        stage.add_argument("--checkpoint", required=True, metavar="DIR")
        stage.add_argument("--prompt", required=name == "generate", default=None)
        stage.add_argument("--max-new-tokens", type=positive_int, default=200)
        stage.add_argument("--temperature", type=temperature, default=0.8)
        stage.add_argument("--top-k", type=non_negative_int, default=50, help="0: no limit")
        stage.add_argument("--seed", type=int, default=0)
        _add_common(stage)

    passkey = commands.add_parser("passkey", help="passkey retrieval accuracy at a prompt "
                                  "length (chapter 09)")
    passkey.add_argument("--checkpoint", required=True, metavar="DIR")
    passkey.add_argument("--length", type=positive_int, required=True,
                         help="prompt length in tokens")
    passkey.add_argument("--trials", type=positive_int, default=100)
    passkey.add_argument("--seed", type=int, default=0)
    _add_common(passkey)

    evaluate = commands.add_parser("eval", help="accuracy on freshly generated held-out "
                                   "problems: greedy, and pass@1 / pass@k when sampling")
    evaluate.add_argument("--checkpoint", required=True, metavar="DIR")
    evaluate.add_argument("--task", choices=("math",), default="math")
    evaluate.add_argument("--n", type=positive_int, default=500, help="problems (default 500)")
    evaluate.add_argument("--seed", type=int, default=0, help="which held-out problems")
    evaluate.add_argument("--samples", type=non_negative_int, default=0,
                          help="sampled replies per problem, for pass@1 and pass@K (default 0)")
    evaluate.add_argument("--temperature", type=temperature, default=1.0,
                          help="sampling temperature (default 1.0)")
    evaluate.add_argument("--out", default=None, metavar="FILE",
                          help="also write the per-problem results as JSON")
    _add_common(evaluate)

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
    from minids import runs
    from minids.config import ModelConfig
    from minids.train import RESUME_COMMAND, TRAIN_PRESETS, TrainConfig, Trainer, resolve_device

    device = resolve_device(args.device)
    tokenizer = load_tokenizer(Path(args.data))
    if args.resume:
        _refuse_with_resume(args, "preset", "out", "fp8", "precision", "overwrite")
        out = Path(args.resume)
        meta, _ = runs.read_state(out)
        model_config = load_config(out)
        saved = TrainConfig(**meta["train_config"])
        train_config = _resumed(saved, args.steps, meta["step"])
        if train_config is None:
            return
    else:
        preset = args.preset or "book"
        if preset not in TRAIN_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(TRAIN_PRESETS)}")
        # the vocabulary is the tokenizer's (the tiny preset's 128 is for unit tests)
        model_config = ModelConfig.preset(preset, vocab_size=tokenizer.vocab_size)
        settings = {**TRAIN_PRESETS[preset], "fp8": args.fp8,
                    "precision": args.precision or "fp32"}
        train_config = TrainConfig(**{**settings, **({"steps": args.steps} if args.steps else {})})
        out = Path(args.out or f"runs/{preset}")
    if tokenizer.vocab_size != model_config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model "
                         f"{model_config.vocab_size}")
    train_tokens, val_tokens = load_rows(args.data, model_config)
    if not args.resume:  # everything checked: now the folder may change
        runs.prepare_new_run(out, args.overwrite, RESUME_COMMAND)
    tokenizer.save(out / "tokenizer.json")
    Trainer(model_config, train_config, train_tokens, val_tokens, out, device,
            resume=bool(args.resume)).run()
    print(f"saved {out}")


def _refuse_with_resume(args, *names):
    """A resumed run keeps its own settings: a flag that would change them is an error."""
    for name in names:
        if getattr(args, name):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} cannot be combined with --resume (the run in "
                             f"{args.resume} keeps its own)")


def _resumed(saved, steps: int | None, done: int):
    """The config to resume with: saved, with steps changed if asked (and a warning, since
    the learning-rate schedule follows the steps); None when nothing is left to do."""
    import dataclasses

    config = saved if steps is None else dataclasses.replace(saved, steps=steps)
    if config.steps != saved.steps:
        print(f"minids: warning: the run was planned for {saved.steps} steps; "
              f"{config.steps} changes its learning-rate schedule from step {done} on",
              file=sys.stderr)
    if done >= config.steps:
        print(f"already at step {done} of {config.steps}: nothing to do")
        return None
    return config


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
    """sft, grpo or distill: fine-tune the run given by --checkpoint into --out, or continue the
    run in --resume."""
    from minids import runs

    if args.command == "grpo":
        from minids.grpo import RESUME_COMMAND, GRPOConfig as Config, grpo as finetune
    else:
        from minids.sft import RESUME_COMMAND, SFTConfig as Config, sft as finetune
    if args.command == "distill":
        from functools import partial

        from minids.distill import RESUME_COMMAND, distill

        if not args.resume and not args.teacher:
            raise ValueError("distill needs --teacher DIR (the model that writes the solutions)")
        if args.resume and args.teacher:
            raise ValueError("--teacher cannot be combined with --resume (the traces are saved)")
        teacher = None if args.resume else load_run(args, Path(args.teacher))[0]
        finetune = partial(distill, teacher=teacher, samples=args.samples,
                           temperature=args.temperature)

    options = {"shuffle_rewards": True} if getattr(args, "shuffle_rewards", False) else {}
    if args.resume:
        _refuse_with_resume(args, "out", "overwrite", *options)
        out = Path(args.resume)
        meta, _ = runs.read_state(out)
        is_distill = (out / "traces.jsonl").is_file()
        if args.command != "grpo" and (args.command == "distill") != is_distill:
            raise ValueError(f"{out} holds a {'distill' if args.command == 'sft' else 'sft'} "
                             f"run: continue it with that command's --resume")
        saved = meta["grpo_config" if args.command == "grpo" else "sft_config"]
        config = _resumed(Config(**saved), args.steps, meta["step"])
        if config is None:
            return
        model, tokenizer, _ = load_run(args, out)
    else:
        out = Path(args.out or f"runs/{args.command}")
        if out.resolve() == Path(args.checkpoint).resolve():
            raise ValueError(f"--out {out} is the --checkpoint folder: the run would "
                             "overwrite the model it starts from")
        model, tokenizer, _ = load_run(args, Path(args.checkpoint))
        config = Config(**({"steps": args.steps} if args.steps else {}), **options)
        runs.prepare_new_run(out, args.overwrite, RESUME_COMMAND)
        tokenizer.save(out / "tokenizer.json")
    finetune(model, tokenizer, config, out_dir=out, resume=bool(args.resume))
    print(f"saved {out}")


def run_export(args):
    import shutil

    from minids import runs
    from minids.checkpoint import save
    from minids.distill import TRACES_FILE
    from minids.train import LOG_FILE

    out, source = Path(args.out), Path(args.checkpoint)
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the --checkpoint folder: export writes a new folder")
    model, tokenizer, _ = load_run(args, source)
    runs.prepare_new_run(out, args.overwrite)
    if args.hf:
        from minids.hf import save_hf

        save_hf(model.cpu(), out, tokenizer)
        print(f"saved {out} (transformers' DeepseekV3ForCausalLM and its tokenizer)")
        return
    save(model.cpu(), out, dtype=torch.bfloat16)
    tokenizer.save(out / "tokenizer.json")
    for record in (LOG_FILE, TRACES_FILE):  # the training log; a distillation's traces
        if (source / record).is_file():
            shutil.copy(source / record, out / record)
    size = (out / "model.safetensors").stat().st_size
    print(f"saved {out} ({size / 1e6:.1f} MB of bf16 weights)")


def run_generate(args):
    prompt = _text(args.prompt)
    model, tokenizer, device = load_run(args, Path(args.checkpoint))
    ids = torch.tensor([tokenizer.encode(prompt, bos=True)], device=device)
    out = generate(model, ids, args)
    print(tokenizer.decode(out[0].tolist(), skip_special_tokens=True))


def run_chat(args):
    questions = [_text(args.prompt)] if args.prompt is not None else _ask_forever()
    model, tokenizer, device = load_run(args, Path(args.checkpoint))
    for question in questions:
        ids = torch.tensor([tokenizer.chat_prompt(question)], device=device)
        out = generate(model, ids, args, eos_token_id=tokenizer.eos_id)
        print(tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True))


def run_passkey(args):
    from minids.passkey import passkey_accuracy

    model, tokenizer, _ = load_run(args, Path(args.checkpoint))
    result = passkey_accuracy(model, tokenizer, args.length, args.trials, args.seed)
    print(f"passkey at {args.length} tokens: {result.correct} of {result.trials} "
          f"({result.accuracy:.1%}); prompts of {result.shortest} to {result.longest} tokens")
    for depth, (correct, trials) in result.by_depth.items():
        print(f"  depth {depth:.2f}: {correct} of {trials}")


def run_eval(args):
    from minids.evaluation import evaluate_math, report

    if args.samples and args.temperature == 0:
        raise ValueError("--samples needs a --temperature above 0 (0 is the greedy reply)")
    model, tokenizer, _ = load_run(args, Path(args.checkpoint))
    scores = evaluate_math(model, tokenizer, args.n, args.seed, args.samples, args.temperature)
    print("\n".join(report(scores)))
    if args.out:
        scores.save(args.out)
        print(f"saved {args.out}")


def _ask_forever():
    print("Ask a question (an empty line or Ctrl-D quits).")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:  # Ctrl-D, or the input closed
            print()
            return
        if not question:
            return
        yield _text(question)


def _text(text: str) -> str:
    """A prompt as valid Unicode: bytes that are not UTF-8 reach Python as surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the prompt is not valid UTF-8 text") from None
    return text


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


def load_run(args, folder: Path):
    """The model and tokenizer of a run folder, on the chosen device."""
    from minids.checkpoint import load
    from minids.train import resolve_device

    device = resolve_device(args.device)
    model = load(folder, device=device).eval()
    tokenizer_folder = folder if (folder / "tokenizer.json").is_file() else Path(args.data)
    return model, load_tokenizer(tokenizer_folder), device


COMMANDS = {"data": run_data, "train": run_train, "sft": run_finetune, "grpo": run_finetune,
            "distill": run_finetune,
            "export": run_export, "generate": run_generate, "chat": run_chat,
            "passkey": run_passkey, "eval": run_eval, "bench": run_bench}


def main(argv=None) -> int:
    from minids.runs import RunInterrupted

    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"minids: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # permissions, a full disk, a file where a folder should be
        reason = error.strerror or type(error).__name__
        where = f": {error.filename}" if error.filename else ""
        print(f"minids: error: {reason.lower()}{where}", file=sys.stderr)
        return 1
    except RunInterrupted as stop:
        print(f"minids: interrupted: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("minids: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())

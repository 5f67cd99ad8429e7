"""The GRPO objective (REFERENCE §7; DeepSeekMath §4), as small functions on tensors.

For each prompt the policy samples a group of G answers; a rule scores each one. An answer's
advantage is its reward standardised within its group, so no value network is needed:

    A_i = (r_i - mean(r)) / (std(r) + 1e-4)

Every token of answer i is pushed by A_i through PPO's clipped ratio rho = pi / pi_old,
and held near a frozen reference policy by the k3 estimate of KL(pi || pi_ref):

    k3 = pi_ref / pi - log(pi_ref / pi) - 1  >= 0

Loss per token: -(min(rho A, clip(rho, 1 - eps, 1 + eps) A) - beta k3); averaged over each
answer's tokens, then over answers (TRL's loss_type="grpo").
"""

import copy
import dataclasses
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from minids import checkpoint, runs
from minids.corpus.arithmetic import math_item
from minids.data import extract_answer, math_eval_set
from minids.generate import generate, left_padded
from minids.model import MiniDeepSeek
from minids.runs import REFERENCE_FILE, GracefulStop, RunInterrupted
from minids.sft import math_accuracy, save_run
from minids.tokenizer import Tokenizer
from minids.train import append_log, make_optimizer, optimizer_step, progress_bar, set_lr

RESUME_COMMAND = "python -m minids grpo --resume"


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """rewards (n_prompts, G) -> advantages (n_prompts, G), zero-mean in each group.
    The std has Bessel's correction, as TRL's; a group of equal rewards gets 0."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True)
    return (rewards - mean) / (std + eps)


def shuffled_within_groups(rewards: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """rewards (n_prompts, G), each row in a random order: the random-reward control.
    Each group keeps its rewards (so its mean and spread), but not who earned them."""
    noise = torch.rand(rewards.shape, generator=generator, device=generator.device)
    return rewards.gather(1, noise.argsort(dim=1).cpu())


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from log-probs of the sampled tokens."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps=0.2, beta=0.04):
    """logp, old_logp, ref_logp, mask (N, T) over the answer tokens; advantages (N,).
    Returns (loss, per-token KL averaged like the loss) as scalars."""
    ratio = torch.exp(logp - old_logp)
    A = advantages[:, None]
    surrogate = torch.minimum(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A)
    kl = k3_kl(logp, ref_logp)
    per_token = -(surrogate - beta * kl)
    mask = mask.to(logp.dtype)
    lengths = mask.sum(dim=1).clamp(min=1)
    loss = ((per_token * mask).sum(dim=1) / lengths).mean()
    mean_kl = ((kl * mask).sum(dim=1) / lengths).mean()
    return loss, mean_kl.detach()


# The training loop: sample groups, score them by rule, update the policy.

@dataclass
class GRPOConfig:
    steps: int = 240
    prompts_per_step: int = 8
    group_size: int = 8  # G answers per prompt
    max_new_tokens: int = 128  # column working: median 49 tokens, longest 107
    # 0.7 keeps a group's answers near the greedy one, so that their rewards differ by the
    # choices greedy decoding makes; 1.0 explores more.
    temperature: float = 0.7
    lr: float = 3e-5  # 1e-4 lowered held-out accuracy (42.5% -> 23.5% in 40 steps)
    updates_per_batch: int = 1  # policy updates on each sampled batch (mu); > 1 uses the clip
    beta: float = 0.04  # KL weight (DeepSeekMath)
    clip_eps: float = 0.2
    format_reward: float = 0.1
    grad_clip: float = 1.0
    # V3 stops moving the routing biases (gamma = 0) for its last 500B pretraining tokens;
    # we keep them frozen in RL, where a step's 64 answers are too few to measure load.
    bias_update_speed: float = 0.0
    # The control run: each group's rewards are shuffled before the advantages, so an
    # answer's advantage no longer says whether it was right. Everything else is the same.
    shuffle_rewards: bool = False
    eval_problems: int = 200
    eval_every: int = 30  # also log the held-out accuracy every this many steps (0: only at the end)
    checkpoint_every: int = 20
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "prompts_per_step", "group_size", "max_new_tokens",
                     "updates_per_batch", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"GRPOConfig: {name} must be an int >= 1, "
                                 f"got {getattr(self, name)!r}")


def reward(reply: str, answer: int, format_reward: float = 0.1) -> float:
    """1 for the exact final answer, plus format_reward when the reply ends with
    "Answer: <integer>" (it finished its working and stated a result): a rule anyone can
    check, no reward model."""
    final = extract_answer(reply)
    ends_with_answer = re.search(r"Answer: -?\d+$", reply.strip()) is not None
    return float(final == str(answer)) + format_reward * ends_with_answer


@dataclass
class Groups:
    """G sampled replies to each of n questions, as one left-padded batch (N = n * G rows,
    question i's replies in rows i * G .. i * G + G - 1)."""
    prompts: torch.Tensor  # (N, P): each prompt G times, left-padded
    document_ids: torch.Tensor  # (N, P): 0 on the padding, 1 on the prompt
    completions: torch.Tensor  # (N, T): the sampled tokens, <|eos|> repeated after the end
    mask: torch.Tensor  # (N, T) bool: the reply's tokens, its first <|eos|> included


def sample_groups(model, tokenizer, questions, config: GRPOConfig, generator) -> Groups:
    """config.group_size sampled replies to each question, all decoded as one batch."""
    device = model.embed.weight.device
    prompts = [tokenizer.chat_prompt(q) for q in questions for _ in range(config.group_size)]
    ids, document_ids = left_padded(prompts, tokenizer.pad_id, device)  # (N, P)
    out = generate(model, ids, config.max_new_tokens, temperature=config.temperature,
                   eos_token_id=tokenizer.eos_id, generator=generator, document_ids=document_ids)
    completions = out[:, ids.shape[1]:]  # (N, T)
    is_eos = completions == tokenizer.eos_id
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first eos
    return Groups(ids, document_ids, completions, ~after_eos)


def completion_logprobs(model, groups: Groups):
    """Log-probabilities (N, T) of each completion token given its prompt and the tokens
    before it."""
    P = groups.prompts.shape[1]
    ids = torch.cat([groups.prompts, groups.completions], dim=1)  # (N, P + T)
    document_ids = torch.cat([groups.document_ids,  # the reply continues its prompt
                              groups.document_ids[:, -1:].expand_as(groups.completions)], dim=1)
    logits = model(ids, document_ids=document_ids).logits[:, P - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, groups.completions[..., None]).squeeze(-1)


def grpo(model: MiniDeepSeek, tokenizer: Tokenizer, config: GRPOConfig, out_dir=None,
         resume: bool = False):
    """Improve model in place on training math problems: each step samples a batch with
    the current policy (pi_old), then makes config.updates_per_batch policy updates on it
    (with one, the ratio is 1 and the clip never acts). The frozen reference is the model
    as it was at the start. With out_dir: log reward / accuracy / KL, checkpoint every
    config.checkpoint_every steps and on Ctrl-C (then RunInterrupted), save the result.
    resume=True continues the run saved in out_dir, reference included."""
    rng = random.Random(f"minids/grpo/{config.seed}")
    generator = torch.Generator(device=model.embed.weight.device).manual_seed(config.seed)
    optimizer = make_optimizer(model, weight_decay=0.0)
    set_lr(optimizer, config.lr)
    start = 0
    if resume:
        meta, tensors = runs.restore(out_dir, model, optimizer)
        start = meta["step"]
        version, internal, gauss = meta["problem_random"]  # JSON made the tuples lists
        rng.setstate((version, tuple(internal), gauss))
        generator.set_state(tensors["rng.sampling"])
        reference = checkpoint.load_weights(model, Path(out_dir) / REFERENCE_FILE)
    else:
        reference = copy.deepcopy(model)
        if out_dir is not None:  # the start of the run, for a resume to find
            checkpoint.save(reference, out_dir, file=REFERENCE_FILE)
    reference.eval().requires_grad_(False)

    def save(step):
        meta = {"grpo_config": dataclasses.asdict(config), "problem_random": rng.getstate()}
        runs.save_checkpoint(out_dir, model, step, {"rng.sampling": generator.get_state()},
                             meta, optimizer)

    steps = progress_bar(range(start, config.steps), config.progress, desc="grpo",
                         total=config.steps, initial=start)
    with GracefulStop(enabled=out_dir is not None) as interrupt:
        for step in steps:
            record = {"step": step + 1, **grpo_step(model, reference, tokenizer, optimizer,
                                                     config, rng, generator)}
            if out_dir is None:
                continue
            if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
                problems = math_eval_set(n=config.eval_problems)
                record["math_accuracy"] = math_accuracy(model.eval(), tokenizer, problems)[0]
            append_log(out_dir, record)
            stopping = interrupt.requested  # read once: a signal after this waits a step
            if step + 1 < config.steps and ((step + 1) % config.checkpoint_every == 0
                                            or stopping):
                save(step + 1)
            if stopping and step + 1 < config.steps:
                raise RunInterrupted(step + 1, out_dir, RESUME_COMMAND)
    model.eval()
    if out_dir is not None and start < config.steps:
        save_run(model, tokenizer, out_dir, config.steps, config.eval_problems, save)
    return model


def grpo_step(model, reference, tokenizer, optimizer, config: GRPOConfig, rng, generator) -> dict:
    """One GRPO step: sample groups for config.prompts_per_step new problems, score them,
    update the policy. Returns the step's log record (without its step number)."""
    problems = [math_item(rng) for _ in range(config.prompts_per_step)]
    model.eval()  # sampling: no router load counting
    groups = sample_groups(model, tokenizer, [p.question for p in problems], config, generator)
    replies = [tokenizer.decode(c[m].tolist(), skip_special_tokens=True)
               for c, m in zip(groups.completions, groups.mask)]
    rewards = torch.tensor([reward(reply, problems[row // config.group_size].answer,
                                   config.format_reward)
                            for row, reply in enumerate(replies)], dtype=torch.float)
    rewards = rewards.view(len(problems), config.group_size)  # (prompts, G)
    scored = shuffled_within_groups(rewards, generator) if config.shuffle_rewards else rewards
    advantages = group_advantages(scored)  # (prompts, G)

    model.train()
    advantages = advantages.flatten().to(groups.completions.device)  # (N,), row order
    with torch.no_grad():
        ref_logp = completion_logprobs(reference, groups)
    for update in range(config.updates_per_batch):  # mu in DeepSeekMath's Algorithm 1
        logp = completion_logprobs(model, groups)
        if update == 0:  # pi_old: the policy that sampled, not yet updated
            old_logp = logp.detach()
        loss, kl = grpo_loss(logp, old_logp, ref_logp, advantages, groups.mask,
                             config.clip_eps, config.beta)
        loss.backward()
        grad_norm, maxvio = optimizer_step(model, optimizer, config.grad_clip,
                                           bias_update_speed=config.bias_update_speed)
    return {"reward": rewards.mean().item(), "accuracy": (rewards >= 1).float().mean().item(),
            "kl": kl.item(), "grad_norm": grad_norm, "maxvio": maxvio}

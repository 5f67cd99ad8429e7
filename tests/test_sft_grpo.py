"""Smoke-and-learning tests of the SFT and GRPO loops on a tiny model with the real tokenizer."""

import torch

import minids
from minids.grpo import GRPOConfig, Groups, completion_logprobs, grpo, reward, sample_groups
from minids.data import math_eval_set
from minids.sft import SFTConfig, answer, math_accuracy, sft
from minids.tokenizer import Tokenizer
from minids.train import read_log
from tests.conftest import tiny_config

TOKENIZER = Tokenizer.load("data/tokenizer.json")


def tiny_chat_model(seed=0):
    minids.seed(seed)
    return minids.MiniDeepSeek(tiny_config(vocab_size=TOKENIZER.vocab_size, max_position_embeddings=256))


def test_sft_lowers_the_answer_loss_and_saves_a_run(tmp_path):
    model = tiny_chat_model()
    sft(model, TOKENIZER, SFTConfig(steps=40, batch_size=8, max_lr=3e-3, eval_problems=8,
                                    progress=False), out_dir=tmp_path)
    log = read_log(tmp_path)
    losses = [r["main_loss"] for r in log if "main_loss" in r]
    # measured: 8.32 at the first step, 6.06-6.72 over the last 5 of 40 steps
    assert losses[0] > 7.5 and sum(losses[-5:]) / 5 < 7.0, (losses[0], losses[-5:])
    assert "math_accuracy" in log[-1]
    loaded = minids.load(tmp_path)
    assert torch.equal(loaded.head.weight, model.head.weight)
    assert (tmp_path / "tokenizer.json").is_file()


def test_answer_batches_prompts_of_any_length():
    model = tiny_chat_model().eval()
    questions = ["What is 2 + 3?", "What is 4 + 5?", "What is 12 + 30?",
                 "Tom has 3 apples. He buys 4 more. How many apples does Tom have now?"]
    together = answer(model, TOKENIZER, questions, max_new_tokens=6)
    alone = [answer(model, TOKENIZER, [q], max_new_tokens=6)[0] for q in questions]
    assert together == alone
    assert answer(model, TOKENIZER, questions, max_new_tokens=6, batch_size=3) == together


def test_math_accuracy_samples_when_asked_and_repeats_with_the_same_seed():
    model = tiny_chat_model().eval()
    problems = math_eval_set(n=4)

    def replies(**sampling):
        return [reply for _, reply, _ in math_accuracy(model, TOKENIZER, problems, 8, **sampling)[1]]

    greedy = replies()
    sampled = replies(temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert sampled == replies(temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert sampled != greedy  # the untrained model's flat softmax: samples leave the argmax
    assert greedy == replies(temperature=0.0)


def test_reward_is_exact_answer_plus_format():
    worked = "12 + 7: 2 + 7 = 9, write 9. 1 + 0 = 1, write 19. Answer: 19"
    assert reward(worked, 19) == 1.1
    assert reward(worked, 19, format_reward=0.0) == 1.0
    assert reward(worked.replace("19", "18"), 19) == 0.1  # finished, but wrong
    assert reward("12 + 7 = 19", 19) == 1.0  # right, but no "Answer: N" at the end
    assert reward("Answer: 19. Then more text", 19) == 1.0
    assert reward("12 + 7: 2 + 7 = 9, write 9.", 19) == 0.0  # cut off before the answer
    assert reward("I do not know", 19) == 0.0


def test_sample_groups_left_pads_one_batch_and_masks_after_the_first_eos():
    model = tiny_chat_model().eval()
    config = GRPOConfig(group_size=4, max_new_tokens=12)
    questions = ["What is 2 + 3?", "What is 12 + 30?"]  # prompts of different lengths
    groups = sample_groups(model, TOKENIZER, questions, config, torch.Generator().manual_seed(0))
    assert groups.prompts.shape[0] == groups.completions.shape[0] == 8
    for row, (prompt, docs) in enumerate(zip(groups.prompts.tolist(), groups.document_ids.tolist())):
        real = [t for t, d in zip(prompt, docs) if d == 1]  # each question G times, in order
        assert real == TOKENIZER.chat_prompt(questions[row // 4])
        assert docs == sorted(docs) and set(prompt[: docs.count(0)]) <= {TOKENIZER.pad_id}
    for row, keep in zip(groups.completions.tolist(), groups.mask.tolist()):
        if TOKENIZER.eos_id in row:
            first = row.index(TOKENIZER.eos_id)
            assert keep == [True] * (first + 1) + [False] * (len(row) - first - 1)
        else:
            assert all(keep)
    # a padded row's log-probabilities are those of its prompt alone
    logp = completion_logprobs(model, groups)
    alone = sample_groups(model, TOKENIZER, questions[:1], config, torch.Generator().manual_seed(0))
    short = groups.document_ids[0].eq(0).sum()
    assert short > 0  # the first question's prompt is the shorter one: it was padded
    single = Groups(groups.prompts[:1, short:], groups.document_ids[:1, short:],
                    groups.completions[:1], groups.mask[:1])
    torch.testing.assert_close(logp[:1], completion_logprobs(model, single), atol=1e-5, rtol=0)
    assert alone.prompts.shape[1] == groups.prompts.shape[1] - short


def test_grpo_runs_logs_and_keeps_the_reference_frozen(tmp_path, monkeypatch):
    # The untrained tiny model never answers right; reward reply length instead, so that
    # the groups have different rewards and the policy has something to follow.
    monkeypatch.setattr("minids.grpo.reward", lambda reply, answer, format_reward: len(reply) % 3)
    model = tiny_chat_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grpo(model, TOKENIZER, GRPOConfig(steps=2, prompts_per_step=2, group_size=4,
                                      max_new_tokens=8, eval_problems=4, eval_every=1,
                                      progress=False),
         out_dir=tmp_path)
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == [1, 2, 2]
    # held-out accuracy after step 1 (eval_every), and once at the end
    assert ["math_accuracy" in r for r in log] == [True, False, True]
    assert all(r["kl"] >= 0 for r in log[:2]) and log[0]["kl"] == 0  # pi == pi_ref at step 1
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if not k.endswith("gate.bias"))
    # the routing biases stay frozen in RL (bias_update_speed = 0 by default)
    assert all(torch.equal(before[k], after[k]) for k in before if k.endswith("gate.bias"))


def test_several_updates_per_batch_move_the_policy_within_a_step(tmp_path, monkeypatch):
    # mu = 2: the second update on the same batch sees a policy that already moved, so the
    # step's KL to the reference is positive (with mu = 1 it is 0 at step 1, see above).
    monkeypatch.setattr("minids.grpo.reward", lambda reply, answer, format_reward: len(reply) % 3)
    grpo(tiny_chat_model(), TOKENIZER, GRPOConfig(steps=1, prompts_per_step=2, group_size=4,
                                                  max_new_tokens=8, eval_problems=4,
                                                  updates_per_batch=2, lr=1e-2, progress=False),
         out_dir=tmp_path)
    assert read_log(tmp_path)[0]["kl"] > 0

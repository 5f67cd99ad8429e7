"""Document masks: packed examples and left padding attend exactly as they would alone."""

import pytest
import torch

from minids.generate import generate, left_padded
from minids.mla import document_mask
from tests.conftest import tiny_model


def test_document_mask_is_causal_within_each_document():
    mask = document_mask(torch.tensor([[0, 0, 1, 1, 1]]), 5)[0, 0]
    expected = torch.tensor([[1, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0],
                             [0, 0, 1, 0, 0],
                             [0, 0, 1, 1, 0],
                             [0, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    # the last 2 positions as queries (decoding with a cache): the same rows
    assert torch.equal(document_mask(torch.tensor([[0, 0, 1, 1, 1]]), 2)[0, 0], expected[3:])


@pytest.mark.parametrize("attention", ["mla", "gqa"])
def test_packed_examples_give_the_logits_of_each_alone(attention):
    model = tiny_model(attention=attention)
    a, b = torch.randint(0, 128, (1, 7)), torch.randint(0, 128, (1, 9))
    packed = model(torch.cat([a, b], dim=1), document_ids=torch.tensor([[0] * 7 + [1] * 9])).logits
    torch.testing.assert_close(packed[:, :7], model(a).logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(packed[:, 7:], model(b).logits, atol=1e-5, rtol=0)
    # without the mask, b sees a: its logits change
    assert not torch.allclose(model(torch.cat([a, b], dim=1)).logits[:, 7:], model(b).logits,
                              atol=1e-3)


def test_packed_training_loss_equals_the_examples_alone():
    model = tiny_model()
    a, b = torch.randint(0, 128, (1, 8)), torch.randint(0, 128, (1, 8))
    docs = torch.tensor([[0] * 8 + [1] * 8])
    ids = torch.cat([a, b], dim=1)
    targets = torch.cat([a[:, 1:], torch.tensor([[-100]]), b[:, 1:], torch.tensor([[-100]])], 1)
    packed = model(ids, targets, document_ids=docs)
    together = model(torch.cat([a, b]), torch.cat([targets[:, :8], targets[:, 8:]]))
    torch.testing.assert_close(packed.main_loss, together.main_loss, atol=1e-5, rtol=0)
    # MTP position 7 would see a's last hidden state and b's first token: it has no target
    torch.testing.assert_close(packed.mtp_loss, together.mtp_loss, atol=1e-5, rtol=0)


def test_left_padded_generation_decodes_each_prompt_as_alone():
    model = tiny_model()
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14], [3]]
    ids, documents = left_padded(prompts, pad_id=0)
    assert ids.tolist()[0] == [0, 0, 0, 5, 6, 7] and documents.tolist()[2] == [0] * 5 + [1]
    out = generate(model, ids, 6, document_ids=documents)
    for row, prompt in enumerate(prompts):
        alone = generate(model, torch.tensor([prompt]), 6)
        assert out[row, ids.shape[1]:].tolist() == alone[0, len(prompt):].tolist()
    for absorb in (False, True):  # the naive decoding path honours the mask too
        again = generate(model, ids, 6, document_ids=documents, absorb=absorb)
        assert torch.equal(again, out)


def test_document_ids_of_the_wrong_shape_are_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="document_ids must be"):
        model(torch.zeros(2, 5, dtype=torch.long), document_ids=torch.zeros(2, 4, dtype=torch.long))


def test_packed_sft_batches_hold_the_same_examples_and_give_the_same_loss():
    import random

    from minids import data
    from tests.test_sft_grpo import TOKENIZER, tiny_chat_model

    examples = data.chat_examples(random.Random(0), 16)
    inputs, targets = data.sft_batch(examples, TOKENIZER, 256)
    packed, packed_targets, documents = data.packed_sft_batch(examples, TOKENIZER, 256)
    assert packed.shape[1] == 256 and packed.shape[0] < len(examples)
    # every example in some row, and only padding outside them
    documents_in_rows = [(documents[r].unique() >= 0).sum().item() for r in range(len(packed))]
    assert sum(documents_in_rows) == len(examples)
    assert (documents == -1).sum() == packed.numel() - (inputs != TOKENIZER.pad_id).sum()
    model = tiny_chat_model().eval()
    padded_loss = model(inputs, targets).main_loss
    packed_loss = model(packed, packed_targets, document_ids=documents).main_loss
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=0)

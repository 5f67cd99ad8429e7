import pytest

from minids.schedule import LRSchedule


def test_lr_schedule_hits_every_milestone():
    s = LRSchedule(max_lr=1e-3, warmup_steps=10, constant_steps=20, decay_steps=40)
    assert s(0) == pytest.approx(1e-4)  # first warmup step: 1/10 of the peak
    assert s(4) == pytest.approx(5e-4)
    assert s(9) == pytest.approx(1e-3)  # end of warmup: the peak
    assert s(10) == s(29) == 1e-3  # the constant stretch
    assert s(30) == pytest.approx(1e-3)  # decay starts at the peak
    assert s(50) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way down the cosine
    assert s(70) == pytest.approx(1e-4) and s(10_000) == pytest.approx(1e-4)  # the tail
    values = [s(i) for i in range(30, 71)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay


def test_lr_schedule_without_warmup_or_decay():
    s = LRSchedule(max_lr=2.0, warmup_steps=0, constant_steps=5, decay_steps=0, final_ratio=0.5)
    assert [s(i) for i in (0, 4, 5, 100)] == [2.0, 2.0, 1.0, 1.0]


@pytest.mark.parametrize("kwargs,field", [
    (dict(warmup_steps=-1), "warmup_steps"), (dict(decay_steps=-5), "decay_steps"),
    (dict(max_lr=0.0), "max_lr"), (dict(final_ratio=1.5), "final_ratio"),
])
def test_bad_schedule_raises_value_error(kwargs, field):
    base = dict(max_lr=1e-3, warmup_steps=10, constant_steps=10, decay_steps=10)
    with pytest.raises(ValueError, match=field):
        LRSchedule(**{**base, **kwargs})

import pytest

from minids.schedule import BatchRamp, LRSchedule, StepSchedule


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


def test_v3s_learning_rate_shape_scaled_down():
    # V3: from 0 over 2K steps to 2.2e-4, constant, cosine to 2.2e-5, then 2.2e-5 and 7.3e-6
    s = LRSchedule(max_lr=2.2e-4, warmup_steps=4, constant_steps=6, decay_steps=10,
                   tails=((3, 0.1), (2, 7.3e-6 / 2.2e-4)), warmup_from_zero=True)
    assert s(0) == 0 and s(2) == pytest.approx(1.1e-4)  # warms up from 0
    assert s(4) == s(9) == 2.2e-4
    assert s(19) > s(20) == pytest.approx(2.2e-5)  # the cosine ends at final_ratio
    assert s(20) == s(22) == pytest.approx(2.2e-5)  # first tail, 3 steps
    assert s(23) == s(24) == s(1000) == pytest.approx(7.3e-6)  # second tail holds


def test_step_schedule_switches_at_its_steps():
    lam = StepSchedule(((0, 0.3), (900, 0.1)))
    assert [lam(0), lam(899), lam(900), lam(10**6)] == [0.3, 0.3, 0.1, 0.1]
    with pytest.raises(ValueError, match="start at step 0"):
        StepSchedule(((5, 0.3),))
    with pytest.raises(ValueError, match="increase"):
        StepSchedule(((0, 0.3), (9, 0.2), (4, 0.1)))


def test_batch_ramp_grows_with_the_tokens_in_whole_multiples():
    ramp = BatchRamp(start=3072, end=15360, ramp_tokens=469 * 10**9, multiple=64)
    assert ramp(0) == 3072 and ramp(469 * 10**9) == ramp(10**13) == 15360
    middle = ramp(469 * 10**9 // 2)
    assert middle % 64 == 0 and abs(middle - (3072 + 15360) / 2) < 64
    sizes = [ramp(t) for t in range(0, 469 * 10**9, 10**9)]
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="multiple"):
        BatchRamp(4, 10, 100, multiple=4)

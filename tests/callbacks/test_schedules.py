"""Schedule values against hand-written NumPy formulas."""

import math

import keras
import numpy as np
import pytest

from callbacks import schedules as S
from tests.helpers import assert_config_round_trip, only_on

STEPS = np.arange(0, 1200, 7).tolist() + [0, 1, 99, 100, 101, 999, 1000, 1001]


def values(schedule, steps=STEPS):
    # Our schedules are elementwise in the step: evaluate all at once.
    return np.asarray(schedule(np.asarray(steps, "float32")), "float64")


def clr_reference(step, lo, hi, size, mode, gamma):
    cycle = math.floor(1 + step / (2 * size))
    x = abs(step / size - 2 * cycle + 1)
    scale = {"triangular": 1.0,
             "triangular2": 1 / 2 ** (cycle - 1),
             "exp_range": gamma ** step}[mode]
    return lo + (hi - lo) * max(0.0, 1 - x) * scale


@pytest.mark.parametrize("mode,gamma", [("triangular", 1.0),
                                        ("triangular2", 1.0),
                                        ("exp_range", 0.999)])
def test_cyclical_matches_smith_formula(mode, gamma):
    s = S.CyclicalLearningRate(1e-4, 1e-2, step_size=100, mode=mode,
                               gamma=gamma)
    expected = [clr_reference(t, 1e-4, 1e-2, 100, mode, gamma)
                for t in STEPS]
    np.testing.assert_allclose(values(s), expected, rtol=1e-4, atol=1e-9)
    # Known points: bottom at 0, top at step_size, bottom at 2*step_size.
    assert float(s(0)) == pytest.approx(1e-4)
    top = 1e-2 if mode != "exp_range" else 1e-4 + (1e-2 - 1e-4) * 0.999**100
    assert float(s(100)) == pytest.approx(top, rel=1e-5)
    assert float(s(200)) == pytest.approx(1e-4, rel=1e-5)


def torch_one_cycle_reference(step, max_lr, total, pct, div, final_div):
    # PyTorch OneCycleLR, anneal_strategy="cos", three_phase=False.
    initial = max_lr / div
    minimum = initial / final_div
    up_end = pct * total - 1
    down_end = total - 1

    def cos(start, end, frac):
        return end + (start - end) / 2 * (math.cos(math.pi * frac) + 1)

    if step <= up_end:
        return cos(initial, max_lr, step / up_end)
    frac = min((step - up_end) / (down_end - up_end), 1.0)
    return cos(max_lr, minimum, frac)


@pytest.mark.parametrize("pct", [0.25, 0.3, 0.5])
def test_one_cycle_matches_pytorch_semantics(pct):
    s = S.OneCycleSchedule(0.1, total_steps=1000, pct_start=pct)
    expected = [torch_one_cycle_reference(t, 0.1, 1000, pct, 25.0, 1e4)
                for t in STEPS]
    np.testing.assert_allclose(values(s), expected, rtol=2e-4, atol=1e-8)
    assert float(s(0)) == pytest.approx(0.1 / 25)
    assert float(s(pct * 1000 - 1)) == pytest.approx(0.1, rel=1e-6)
    assert float(s(999)) == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)
    assert float(s(5000)) == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)



def one_cycle_reference(step, max_lr, total, pct, div, final_div):
    # The documented 1cycle: `initial` at step 0, `max_lr` at step
    # pct * total - 1, `final` from step total - 1 on. A rise shorter than
    # one step (pct * total <= 1) is step 0 alone, and the descent from
    # `max_lr` then starts at step 0 (the limit as the peak step falls to 0).
    initial = max_lr / div
    final = initial / final_div
    up = pct * total - 1
    if step == 0:
        return initial
    if up > 0:
        return torch_one_cycle_reference(step, max_lr, total, pct, div,
                                         final_div)
    frac = min(step / (total - 1), 1.0)
    return final + (max_lr - final) / 2 * (math.cos(math.pi * frac) + 1)


def test_one_cycle_short_rise_starts_at_initial_lr():
    cases = [
        (5, 0.1), (3, 0.3), (2, 0.25),  # pct * total < 1
        (5, 0.2), (4, 0.25),  # pct * total == 1 (PyTorch divides by zero)
        (5, 0.3), (2, 0.75), (10, 0.25),  # pct * total > 1
    ]
    for total, pct in cases:
        s = S.OneCycleSchedule(0.1, total_steps=total, pct_start=pct)
        steps = list(range(total + 3))
        got = values(s, steps)
        expected = [one_cycle_reference(t, 0.1, total, pct, 25.0, 1e4)
                    for t in steps]
        case = f"total_steps={total}, pct_start={pct}"
        assert np.isfinite(got).all(), case
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9,
                                   err_msg=case)
        # Step 0 is the warmup's start, never the peak; the end is exact.
        assert got[0] == pytest.approx(0.1 / 25), case
        np.testing.assert_allclose(got[total - 1:], 0.1 / 25 / 1e4,
                                   rtol=1e-3, err_msg=case)
        assert got.max() <= 0.1 * (1 + 1e-6), case


def warmup_cosine_reference(t, peak, total, warmup, init, hold, alpha):
    if t < warmup:
        return init + (peak - init) * t / warmup
    if t < warmup + hold:
        return peak
    decay = total - warmup - hold
    frac = min((t - warmup - hold) / decay, 1.0)
    return alpha * peak + (peak - alpha * peak) * 0.5 * (
        1 + math.cos(math.pi * frac))


@pytest.mark.parametrize("warmup,init,hold,alpha", [
    (0, 0.0, 0, 0.0), (100, 0.0, 0, 0.0), (100, 1e-4, 50, 0.1),
    (250, 0.0, 300, 0.01)])
def test_warmup_cosine_decay(warmup, init, hold, alpha):
    s = S.WarmupCosineDecay(1e-3, total_steps=1000, warmup_steps=warmup,
                            initial_learning_rate=init, hold_steps=hold,
                            alpha=alpha)
    expected = [warmup_cosine_reference(t, 1e-3, 1000, warmup, init, hold,
                                        alpha) for t in STEPS]
    np.testing.assert_allclose(values(s), expected, rtol=1e-5, atol=1e-10)


def test_warmup_cosine_decay_without_decay_phase():
    # warmup + hold == total: linear warmup, the peak, then alpha * peak.
    s = S.WarmupCosineDecay(1e-3, total_steps=100, warmup_steps=40,
                            initial_learning_rate=1e-4, hold_steps=60,
                            alpha=0.1)
    np.testing.assert_allclose(
        values(s, [0, 20, 39, 40, 99, 100, 500]),
        [1e-4, 1e-4 + 9e-4 * 20 / 40, 1e-4 + 9e-4 * 39 / 40, 1e-3, 1e-3,
         1e-4, 1e-4], rtol=1e-5)


def test_step_decay_every_k_and_boundaries():
    s = S.StepDecay(0.1, factor=0.5, step_size=30)
    np.testing.assert_allclose(
        values(s), [0.1 * 0.5 ** (t // 30) for t in STEPS], rtol=1e-5)
    b = S.StepDecay(0.1, factor=0.1, boundaries=[100, 500])
    expected = [0.1 * 0.1 ** ((t >= 100) + (t >= 500)) for t in STEPS]
    np.testing.assert_allclose(values(b), expected, rtol=1e-5)


def test_warmup_wraps_keras_and_our_schedules_continuously():
    keras_sched = keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5)
    w = S.Warmup(keras_sched, warmup_steps=20, initial_learning_rate=0.01)
    for t in [0, 5, 10, 19]:
        assert float(w(t)) == pytest.approx(0.01 + (0.1 - 0.01) * t / 20)
    for t in [20, 21, 70, 320]:
        assert float(w(t)) == pytest.approx(0.1 * 0.5 ** ((t - 20) / 100),
                                            rel=1e-5)
    # Continuity at the boundary: the step before is one increment below.
    assert float(w(20)) - float(w(19)) == pytest.approx(0.09 / 20, rel=1e-4)
    ours = S.Warmup(S.CyclicalLearningRate(1e-3, 1e-2, 10), warmup_steps=5)
    assert float(ours(5)) == pytest.approx(1e-3)
    assert float(ours(15)) == pytest.approx(1e-2)
    constant = S.Warmup(0.3, warmup_steps=3)
    np.testing.assert_allclose(values(constant, [0, 1, 3, 9]),
                               [0.0, 0.1, 0.3, 0.3], rtol=1e-6)


def test_join_schedules_phase_local_steps():
    j = S.JoinSchedules(
        [S.LinearSchedule(0.0, 1.0, 10), S.ConstantSchedule(1.0),
         S.LinearSchedule(1.0, 0.0, 10)], boundaries=[10, 15])
    np.testing.assert_allclose(
        values(j, [0, 5, 10, 14, 15, 20, 25, 40]),
        [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-7)


@only_on("tensorflow")  # a tf.function
def test_schedules_run_in_graph_on_tensor_steps():
    import tensorflow as tf

    s = S.OneCycleSchedule(0.1, 100)

    @tf.function
    def f(step):
        return s(step)

    assert float(f(tf.constant(24, "int64"))) == pytest.approx(0.1)


ALL = [
    S.CyclicalLearningRate(1e-4, 1e-2, 100, "exp_range", 0.99),
    S.OneCycleSchedule(0.1, 1000, pct_start=0.3),
    S.WarmupCosineDecay(1e-3, 1000, 100, 1e-5, 10, 0.1),
    S.StepDecay(0.1, 0.5, boundaries=[10, 20]),
    S.Warmup(S.StepDecay(0.1, 0.5, step_size=7), 10, 0.001),
    S.JoinSchedules([S.CosineSchedule(1.0, 0.5, 5), S.ConstantSchedule(0.5)],
                    [5]),
    S.LinearSchedule(0.0, 1.0, 10),
]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_config_and_keras_serialization_round_trip(schedule):
    clone = assert_config_round_trip(schedule)
    np.testing.assert_allclose(values(clone, [0, 3, 50, 700]),
                               values(schedule, [0, 3, 50, 700]), rtol=1e-6)
    config = keras.optimizers.schedules.serialize(schedule)
    again = keras.optimizers.schedules.deserialize(config)
    assert type(again) is type(schedule)


def test_model_with_schedule_optimizer_reloads_safe_mode(tmp_path):
    from tests.helpers import assert_keras_round_trip, mlp

    model = mlp(input_shape=(4,), num_classes=3)
    opt = keras.optimizers.SGD(S.Warmup(S.OneCycleSchedule(0.1, 100), 5))
    model.compile(opt, "sparse_categorical_crossentropy")
    x = np.random.rand(32, 4).astype("float32")
    model.fit(x, np.arange(32) % 3, epochs=1, verbose=0)
    loaded = assert_keras_round_trip(model, x, tmp_path)
    lr = loaded.optimizer._learning_rate
    assert isinstance(lr, S.Warmup)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(
        float(model.optimizer.learning_rate))


@pytest.mark.parametrize("build,match", [
    (lambda: S.CyclicalLearningRate(1e-3, 1e-2, step_size=0), "step_size"),
    (lambda: S.CyclicalLearningRate(1e-2, 1e-3, 10), "maximal_learning_rate"),
    (lambda: S.CyclicalLearningRate(-1e-3, 1e-2, 10),
     "initial_learning_rate"),
    (lambda: S.CyclicalLearningRate(1e-3, 1e-2, 10, mode="sine"), "mode"),
    (lambda: S.CyclicalLearningRate(1e-3, 1e-2, 10, gamma=0), "gamma"),
    (lambda: S.WarmupCosineDecay(1e-3, 100, warmup_steps=200),
     "warmup_steps"),
    (lambda: S.WarmupCosineDecay(1e-3, 100, warmup_steps=50, hold_steps=60),
     "hold_steps"),
    (lambda: S.WarmupCosineDecay(0.0, 100), "peak_learning_rate"),
    (lambda: S.WarmupCosineDecay(1e-3, 0), "total_steps"),
    (lambda: S.OneCycleSchedule(0.1, 1), "total_steps"),
    (lambda: S.OneCycleSchedule(0.1, 100, pct_start=1.0), "pct_start"),
    (lambda: S.OneCycleSchedule(0.1, 100, div_factor=0.5), "div_factor"),
    (lambda: S.StepDecay(0.1, 0.5), "step_size"),
    (lambda: S.StepDecay(0.1, 0.5, step_size=5, boundaries=[3]),
     "step_size"),
    (lambda: S.StepDecay(0.1, 1.5, step_size=5), "factor"),
    (lambda: S.StepDecay(0.1, 0.5, boundaries=[5, 3]), "boundaries"),
    (lambda: S.Warmup(S.ConstantSchedule(0.1), 0), "warmup_steps"),
    (lambda: S.JoinSchedules([S.ConstantSchedule(1.0)], [3]), "boundaries"),
])
def test_bad_arguments_raise_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=f"`{match}`.*Received"):
        build()


def test_non_schedule_is_a_type_error():
    with pytest.raises(TypeError, match="`schedule`.*Received"):
        S.Warmup("cosine", 10)
    with pytest.raises(TypeError, match="`step_size`.*Received"):
        S.CyclicalLearningRate(1e-3, 1e-2, step_size="10")


@pytest.mark.parametrize("build", [
    lambda: S.JoinSchedules(
        [S.ConstantSchedule(1.0), S.ConstantSchedule(2.0)], 5),
    lambda: S.StepDecay(0.1, boundaries=5),
    lambda: S.StepDecay(0.1, boundaries="5"),
], ids=["join", "step_decay", "step_decay_str"])
def test_scalar_boundaries_are_a_type_error_naming_the_argument(build):
    with pytest.raises(TypeError, match=r"`boundaries`.*Received: boundari"):
        build()


def test_boundaries_accept_tuples_and_numpy_arrays():
    j = S.JoinSchedules([S.ConstantSchedule(1.0), S.ConstantSchedule(2.0)],
                        np.array([5]))
    np.testing.assert_allclose(values(j, [0, 4, 5, 9]), [1, 1, 2, 2])
    s = S.StepDecay(0.1, factor=0.5, boundaries=(2, 4))
    np.testing.assert_allclose(values(s, [0, 2, 4]),
                               [0.1, 0.05, 0.025], rtol=1e-6)

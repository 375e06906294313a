"""Our optimizers forward Keras's base keyword arguments."""

import keras
import numpy as np
import pytest

from recipes.optimizers import LARS, AdaBelief, RAdam, Yogi
from tests.recipes.optimizers._steps import fixed_problem, run_keras

CLASSES = [RAdam, AdaBelief, Yogi, LARS]


@pytest.mark.parametrize("cls", CLASSES)
def test_clipnorm_and_gradient_accumulation_reach_the_update(cls):
    w0, grads = fixed_problem(steps=4)
    # clipnorm: the same as feeding gradients rescaled to norm 0.01.
    clipped = run_keras(cls(clipnorm=0.01), w0, grads)
    rescaled = [g * 0.01 / np.linalg.norm(g) for g in grads]
    np.testing.assert_allclose(clipped, run_keras(cls(), w0, rescaled),
                               rtol=1e-5, atol=1e-6)
    # Accumulation over 2 calls: one real step on the mean gradient.
    accumulated = run_keras(cls(gradient_accumulation_steps=2), w0, grads)
    np.testing.assert_array_equal(accumulated[0], w0)
    means = [(grads[0] + grads[1]) / 2, (grads[2] + grads[3]) / 2]
    np.testing.assert_allclose(accumulated[3], run_keras(cls(), w0, means)[1],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", CLASSES)
def test_ema_and_schedule_are_accepted_and_serialized(cls):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5)
    opt = cls(learning_rate=schedule, use_ema=True, ema_momentum=0.9,
              clipvalue=1.0)
    config = opt.get_config()
    assert config["use_ema"] and config["ema_momentum"] == 0.9
    assert config["clipvalue"] == 1.0
    run_keras(opt, *fixed_problem(steps=4))
    # ExponentialDecay(0.01, decay_steps=2, rate=0.5) after 4 steps.
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(opt.learning_rate)), 0.0025,
        rtol=1e-6,
    )


def test_adabelief_decoupled_weight_decay():
    # Keras applies w -= lr * wd * w before the update.
    w0, grads = fixed_problem(steps=1)
    decayed = run_keras(AdaBelief(0.01, weight_decay=0.1), w0, grads)[0]
    plain = run_keras(AdaBelief(0.01), w0 * (1 - 0.01 * 0.1), grads)[0]
    np.testing.assert_allclose(decayed, plain, rtol=1e-6, atol=1e-6)

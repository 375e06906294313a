"""Knowledge distillation recipe on top of `keras.distillation.Distiller`.

Keras provides the distiller (teacher frozen, student trained on a mix of
the hard-label loss and a temperature-scaled logits loss); this recipe adds
argument checks, a step budget with the library's warmup-cosine schedule,
and the measurement that says whether distillation helped: the same student
trained on the labels alone.
"""

import dataclasses
import math
import warnings

import keras
import numpy as np

from callbacks._internal import check_number
from callbacks.schedules import WarmupCosineDecay
from recipes.compress._checks import (
    check_labelled_data,
    model_input_shape,
    model_num_classes,
)

# Optimizer steps `epochs="auto"` aims for; see `distill`'s docstring.
STEP_BUDGET = 1000


@dataclasses.dataclass
class DistillationResult:
    """What `distill` produced.

    Attributes:
        student: The trained student (the same object that was passed in).
        history: The `keras.callbacks.History` of the distiller's `fit`.
        metrics: Dict with `student_params` and `teacher_params`, plus, when
            `validation_data` is given, `student_accuracy`,
            `teacher_accuracy` and `agreement` (fraction of examples where
            student and teacher predict the same class), and with
            `compare_alone`, `alone_accuracy` (the student trained on the
            labels alone) and `gain` (`student_accuracy - alone_accuracy`).
        config: The resolved settings: `temperature`, `alpha`, `epochs`
            (an `"auto"` resolved to a number), `steps` (optimizer steps)
            and `batch_size`.
        alone: The copy of the student trained on the labels alone (same
            initial weights, same schedule), or `None` when it was not
            trained.
    """

    student: keras.Model
    history: keras.callbacks.History
    metrics: dict
    config: dict
    alone: keras.Model = None


def _output_shape(model, name):
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        raise ValueError(
            f"Argument `{name}` must be a built single-output model with "
            f"symbolic outputs (Sequential or functional). "
            f"Received: {name}={model.name!r}"
        )
    return tuple(outputs[0].shape)


def _final_softmax(model):
    """The layer that ends `model` with a softmax, or `None`.

    Looks at the last layer, and into it when it is itself a model.
    """
    layers = getattr(model, "layers", None)
    if not layers:
        return None
    last = layers[-1]
    if isinstance(last, keras.layers.Softmax) or (
            getattr(last, "activation", None) is keras.activations.softmax):
        return last
    return _final_softmax(last)


def _check_logits(model, name):
    last = _final_softmax(model)
    if last is not None:
        raise ValueError(
            f"Argument `{name}` must output logits (its last layer "
            f"{last.name!r} applies a softmax): temperature scaling needs "
            f"logits. Received: {name}={model.name!r}"
        )


def _accuracy(model, x, y, batch_size):
    predicted = np.argmax(model.predict(x, batch_size=batch_size,
                                        verbose=0), axis=-1)
    return predicted, float(np.mean(predicted == np.asarray(y)))


def build_distiller(teacher, student, temperature=1.0, alpha=0.5,
                    optimizer="adam"):
    """A compiled `keras.distillation.Distiller` for integer-label logits.

    Its loss is `alpha * CE(y, student) + (1 - alpha) * T^2 *
    KL(softmax(teacher / T) || softmax(student / T))`. `distill` uses it;
    build it directly to train with your own `fit` arguments. The teacher
    is frozen (`teacher.trainable = False`). The defaults are `distill`'s
    (see its docstring for why).

    Args:
        teacher: The teacher model (outputs logits).
        student: The student model (outputs logits, same shape).
        temperature: Softmax temperature `T`. Defaults to `1.0`.
        alpha: Weight of the hard-label loss. Defaults to `0.5`.
        optimizer: Optimizer for the student. Defaults to `"adam"`.

    Returns:
        The compiled distiller; `distiller.student` is the student.

    Example:

    >>> teacher = keras.Sequential([keras.Input((4,)),
    ...                             keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)),
    ...                             keras.layers.Dense(3)])
    >>> build_distiller(teacher, student).student is student
    True

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531):
          Distilling the knowledge in a neural network.
    """
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        # An explicit KLDivergence instance: the default "kl_divergence"
        # string resolves to a plain function, which LogitsDistillation
        # (Keras 3.15) then applies to raw logits instead of softmax
        # probabilities, without the T^2 factor.
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=temperature, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=alpha,
    )
    distiller.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return distiller


def _train(teacher, student, x, y, temperature, alpha, epochs, batch_size,
           schedule, callbacks, verbose):
    distiller = build_distiller(teacher, student, temperature, alpha,
                                keras.optimizers.Adam(schedule))
    return distiller.fit(x, y, batch_size=batch_size, epochs=epochs,
                         callbacks=callbacks, verbose=verbose)


def _check_settings(temperature, alpha, epochs, batch_size, learning_rate,
                    warmup_fraction):
    """Check `distill`'s numeric settings.

    Returns:
        `(temperature, alpha, batch_size)` as `distill` uses them.
    """
    # float(): Keras's Distiller rejects NumPy scalars such as np.float32.
    temperature = float(check_number("temperature", temperature, low=0.0,
                                     low_inclusive=False))
    alpha = float(check_number("alpha", alpha, low=0.0, high=1.0))
    if isinstance(epochs, str) and epochs != "auto":
        raise ValueError(
            'Argument `epochs` must be a positive integer or "auto". '
            f"Received: epochs={epochs!r}"
        )
    if epochs != "auto":
        check_number("epochs", epochs, low=1, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    if not isinstance(learning_rate,
                      keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, low=0.0,
                     low_inclusive=False)
    check_number("warmup_fraction", warmup_fraction, low=0.0, high=1.0,
                 high_inclusive=False)
    return temperature, alpha, batch_size


def _check_models(teacher, student):
    """Check that teacher and student are distinct logits models alike."""
    if teacher is student:
        raise ValueError(
            "Arguments `teacher` and `student` must be different models "
            "(the teacher is frozen, so the student would not train). "
            f"Received: the same model {teacher.name!r} twice"
        )
    teacher_shape = _output_shape(teacher, "teacher")
    student_shape = _output_shape(student, "student")
    if teacher_shape != student_shape:
        raise ValueError(
            "Arguments `teacher` and `student` must have the same output "
            f"shape. Received: teacher output shape={teacher_shape}, "
            f"student output shape={student_shape}"
        )
    _check_logits(teacher, "teacher")
    _check_logits(student, "student")


def _check_data(teacher, data, validation_data):
    """`(x, y)` and the validation `(x, y)` (or `None`), checked."""
    input_shape = model_input_shape(teacher, "teacher")
    num_classes = model_num_classes(teacher)
    x, y = check_labelled_data("data", data, input_shape, num_classes)
    validation = None
    if validation_data is not None:
        validation = check_labelled_data(
            "validation_data", validation_data, input_shape, num_classes
        )
    return x, y, validation


def _resolve_config(temperature, alpha, epochs, batch_size, num_examples):
    """The settings `distill` runs with, `epochs="auto"` made a number."""
    steps_per_epoch = math.ceil(num_examples / batch_size)
    if epochs == "auto":
        epochs = math.ceil(STEP_BUDGET / steps_per_epoch)
    return {"temperature": temperature, "alpha": alpha, "epochs": epochs,
            "steps": epochs * steps_per_epoch, "batch_size": batch_size}


def _schedule(learning_rate, warmup_fraction, steps):
    """The learning rate of one run: `learning_rate` as is, or warmup-cosine.

    Call it once per run: each optimizer counts its own steps.
    """
    if isinstance(learning_rate,
                  keras.optimizers.schedules.LearningRateSchedule):
        return learning_rate
    return WarmupCosineDecay(learning_rate, steps,
                             warmup_steps=int(warmup_fraction * steps))


def _fit_both(teacher, student, alone, x, y, config, learning_rate,
              warmup_fraction, callbacks, verbose):
    """Distill into `student`, then train `alone` on the labels, if given.

    Returns the distillation's history; the teacher's `trainable` flag is
    restored whatever happens.
    """
    temperature, epochs = config["temperature"], config["epochs"]
    batch_size, steps = config["batch_size"], config["steps"]
    teacher_trainable = teacher.trainable
    try:
        history = _train(teacher, student, x, y, temperature,
                         config["alpha"], epochs, batch_size,
                         _schedule(learning_rate, warmup_fraction, steps),
                         callbacks, verbose)
        if alone is not None:
            _train(teacher, alone, x, y, temperature, 1.0, epochs,
                   batch_size,
                   _schedule(learning_rate, warmup_fraction, steps), None, 0)
    finally:
        teacher.trainable = teacher_trainable
    return history


def _evaluate(teacher, student, alone, validation, batch_size):
    """`DistillationResult.metrics`; warns when the student alone won."""
    metrics = {
        "student_params": student.count_params(),
        "teacher_params": teacher.count_params(),
    }
    if validation is not None:
        x_val, y_val = validation
        student_pred, metrics["student_accuracy"] = _accuracy(
            student, x_val, y_val, batch_size
        )
        teacher_pred, metrics["teacher_accuracy"] = _accuracy(
            teacher, x_val, y_val, batch_size
        )
        metrics["agreement"] = float(np.mean(student_pred == teacher_pred))
    if alone is not None:
        _, metrics["alone_accuracy"] = _accuracy(alone, x_val, y_val,
                                                 batch_size)
        metrics["gain"] = (metrics["student_accuracy"]
                           - metrics["alone_accuracy"])
        if metrics["gain"] < 0:
            warnings.warn(
                "Distillation did not help: the distilled student reached "
                f"{metrics['student_accuracy']:.4f} accuracy on "
                "`validation_data`, the same student trained on the labels "
                f"alone {metrics['alone_accuracy']:.4f} (kept in "
                "`result.alone`). Soft targets add little when the teacher "
                "is nearly certain on its training data or much larger "
                "than the student.",
                # 3: past this helper and `distill`, to the caller's line.
                stacklevel=3,
            )
    return metrics


def distill(teacher, student, data, validation_data=None, temperature=1.0,
            alpha=0.5, epochs="auto", batch_size=32, learning_rate=1e-3,
            warmup_fraction=0.1, compare_alone=True, callbacks=None,
            verbose=0):
    """Train `student` to imitate `teacher` (Hinton et al., 2015).

    Builds a `keras.distillation.Distiller` with a
    `keras.distillation.LogitsDistillation(temperature)` loss: the student
    minimizes `alpha * CE(y, student) + (1 - alpha) * T^2 *
    KL(softmax(teacher / T) || softmax(student / T))`. The teacher is frozen
    during training and its `trainable` flag is restored afterwards. The
    optimizer is Adam with a linear-warmup cosine schedule over all steps.
    `alpha=1.0` trains the student on labels only (the teacher is not even
    run), which is the fair "student alone" baseline.

    Why these defaults:

    - The schedule is a step budget, not an epoch count. A small student
      trained from scratch by Adam needs on the order of a thousand updates
      whatever the size of the data, so a fixed number of epochs leaves it
      far from trained on a few hundred examples (and spends far more than
      needed on a large set). `epochs="auto"` runs
      `ceil(STEP_BUDGET / steps_per_epoch)` epochs (`STEP_BUDGET` is
      1,000): at least a thousand steps and at least one epoch.
    - `temperature=1.0` and `alpha=0.5`. The soft targets are computed on
      the teacher's own training data, on which it is usually almost
      certain (it has fit those very examples), so they carry little
      beyond the labels; a higher temperature mostly amplifies the small,
      noisy logits of the wrong classes, which a student much smaller than
      its teacher cannot match without losing accuracy on the right class.
      Measured over four small real data sets, `T=4, alpha=0.1` (the
      common choice for large students and long schedules) mostly ended
      below the student trained alone, while `T=1, alpha=0.5` matched it on
      average, within about a point in most runs
      (`benchmarks/RESULTS.md`, "Distillation"). Raise `temperature` for a
      teacher that is uncertain on its training data, or when the student
      is close to the teacher's size.
    - Distillation cannot always help, so with `validation_data` and
      `compare_alone=True` a copy of the student (same initial weights,
      same schedule) is also trained on the labels alone: the metrics
      report both accuracies, `result.alone` holds that copy, and a
      warning says when the distilled student is the worse one.

    Args:
        teacher: A trained classifier that outputs logits.
        student: A classifier with the same input and output shapes, also
            outputting logits.
        data: `(x, y)` arrays with 1-D integer labels.
        validation_data: `(x, y)` with 1-D integer labels, to report
            accuracies and agreement. Defaults to `None`.
        temperature: Softmax temperature `T > 0`. Defaults to `1.0`.
        alpha: Weight of the hard-label loss, in `[0, 1]`. Defaults to
            `0.5`.
        epochs: Training epochs, or `"auto"` for
            `ceil(STEP_BUDGET / steps_per_epoch)` (a budget of about a
            thousand optimizer steps). Defaults to `"auto"`.
        batch_size: Batch size. Defaults to `32`.
        learning_rate: Peak learning rate of a
            `callbacks.WarmupCosineDecay` over all the steps, or any Keras
            `LearningRateSchedule` to use as is. Defaults to `1e-3`.
        warmup_fraction: Fraction of the steps spent warming up, in
            `[0, 1)`, for a float `learning_rate`. Defaults to `0.1`.
        compare_alone: With `validation_data`, whether to also train a copy
            of the student on the labels alone and report it (this roughly
            doubles the student's training time; the teacher is not run for
            it). `callbacks` and `verbose` apply to the distillation only.
            Defaults to `True`.
        callbacks: Extra Keras callbacks for `fit`. Defaults to `None`.
        verbose: Verbosity of `fit`. Defaults to `0`.

    Returns:
        A `DistillationResult` (`student`, `history`, `metrics`, `config`,
        `alone`).

    Raises:
        ValueError: If an argument is out of range, a model outputs
            probabilities instead of logits (a final softmax activation or
            `Softmax` layer, also inside a nested model), `teacher` is
            `student`, the teacher's and the student's output shapes
            differ, or `data` or `validation_data` is not `(x, y)` with
            inputs the teacher takes and as many 1-D integer labels in
            `[0, num_classes)`. All of this is checked before training
            starts.

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = (x[:, 0] > 0.5).astype("int64")
    >>> teacher = keras.Sequential([keras.Input((4,)),
    ...                             keras.layers.Dense(2)])
    >>> student = keras.Sequential([keras.Input((4,)),
    ...                             keras.layers.Dense(2)])
    >>> result = distill(teacher, student, (x, y), epochs=1)
    >>> result.config["steps"], result.alone is None
    (2, True)

    References:
        - [Hinton et al., 2015](https://arxiv.org/abs/1503.02531):
          Distilling the knowledge in a neural network.
        - [Cho & Hariharan, 2019](https://arxiv.org/abs/1910.01348):
          On the efficacy of knowledge distillation.
    """
    temperature, alpha, batch_size = _check_settings(
        temperature, alpha, epochs, batch_size, learning_rate,
        warmup_fraction,
    )
    _check_models(teacher, student)
    x, y, validation = _check_data(teacher, data, validation_data)

    config = _resolve_config(temperature, alpha, epochs, batch_size, len(x))
    alone = None
    if validation is not None and compare_alone and alpha < 1.0:
        alone = keras.models.clone_model(student)
        alone.set_weights(student.get_weights())
    history = _fit_both(teacher, student, alone, x, y, config, learning_rate,
                        warmup_fraction, callbacks, verbose)
    metrics = _evaluate(teacher, student, alone, validation, batch_size)
    return DistillationResult(student, history, metrics, config, alone)

"""Stochastic Weight Averaging (SWA) with BatchNorm re-estimation."""

import keras
import numpy as np

from callbacks import _lr_control
from callbacks._validation import check_number


def _batch_norm_layers(model):
    """Every BatchNormalization layer in `model`, also inside custom layers.

    `Model.layers` only lists the top level; a custom layer (a residual
    block) holds its sublayers as attributes, or in lists/dicts of them.
    """
    found, seen = [], set()

    def visit(obj):
        if isinstance(obj, keras.layers.Layer):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if isinstance(obj, keras.layers.BatchNormalization):
                found.append(obj)
            for value in vars(obj).values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value)

    visit(model)
    return found


class SWA(keras.callbacks.Callback):
    """Average the weights visited at the end of epochs, then fix BatchNorm.

    From epoch `start_epoch` on (0-based), every `swa_freq` epochs, the
    trainable weights are added to a running average. When training ends the
    model's trainable weights are replaced by that average, and the
    BatchNormalization statistics are re-estimated on `bn_data`: the moving
    mean and variance of the averaged network are not the average of the
    moving statistics, so a model averaged without this pass evaluates with
    wrong statistics. Re-estimation resets each trainable BatchNormalization
    layer, runs `bn_data` through the model in training mode and stores the
    equal-weight average of the batch statistics (no gradient step is taken).

    The paper pairs SWA with a high constant (or cyclical) learning rate in
    the averaging phase: pass `swa_learning_rate` to switch a float learning
    rate to that value at `start_epoch` (or at the first epoch, when `fit`
    resumes with `initial_epoch` past `start_epoch`), or compile with a
    schedule of your own. The switch also works beside our
    `ReduceLROnPlateau` and `DivergenceGuard`: it sets the rate to
    `swa_learning_rate` and clears their earlier reductions (as Keras's own
    `ReduceLROnPlateau` would see it); later reductions apply on top.

    Args:
        start_epoch: First epoch (0-based) whose final weights are averaged,
            >= 0.
        swa_freq: Average every `swa_freq` epochs from `start_epoch`, >= 1.
            Defaults to `1`.
        swa_learning_rate: Constant learning rate from `start_epoch` on, or
            `None` to leave the learning rate alone. Requires an optimizer
            created with a float learning rate, and no schedule callback
            (`ScheduleLR`, `OneCycleLR`, ...) in the same `fit`.
            Defaults to `None`.
        bn_data: Inputs for the BatchNorm pass: an array (split into batches
            of `bn_batch_size`) or an iterable of batches (`x` or `(x, y)`
            tuples, e.g. the training `tf.data.Dataset`). Required when the
            model has trainable BatchNormalization layers. Defaults to `None`.
        bn_batch_size: Batch size used to split an array `bn_data`.
            Defaults to `32`.
        verbose: Whether to print when averaging starts and ends.
            Defaults to `0`.

    Raises:
        ValueError: For invalid arguments; at the start of training when
            the model has BatchNormalization but no `bn_data` was given;
            at the first epoch when `swa_learning_rate` is given but the
            learning rate is a schedule.

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.rand(64, 4).astype("float32"); y = x.sum(1)
    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.BatchNormalization(),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    >>> swa = SWA(start_epoch=2, swa_learning_rate=0.02, bn_data=x)
    >>> history = model.fit(x, y, epochs=4, callbacks=[swa], verbose=0)

    References:
        - [Izmailov et al., 2018](https://arxiv.org/abs/1803.05407),
          Algorithm 1.
    """

    def __init__(self, start_epoch, swa_freq=1, swa_learning_rate=None,
                 bn_data=None, bn_batch_size=32, verbose=0):
        super().__init__()
        self.start_epoch = check_number("start_epoch", start_epoch, low=0,
                                        integer=True)
        self.swa_freq = check_number("swa_freq", swa_freq, low=1,
                                     integer=True)
        self.swa_learning_rate = check_number(
            "swa_learning_rate", swa_learning_rate, low=0.0,
            low_inclusive=False, allow_none=True,
        )
        self.bn_batch_size = check_number("bn_batch_size", bn_batch_size,
                                          low=1, integer=True)
        self.bn_data = bn_data
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self._average = None
        self._first_epoch = True
        self.averaged_epochs = []
        bn_layers = [b for b in _batch_norm_layers(self.model) if b.trainable]
        if bn_layers and self.bn_data is None:
            raise ValueError(
                "Argument `bn_data` is required: the model has "
                f"{len(bn_layers)} BatchNormalization layer(s) whose "
                "statistics must be re-estimated for the averaged weights. "
                "Received: bn_data=None"
            )

    def _check_float_learning_rate(self):
        # Checked at the first epoch: by then every callback's
        # `on_train_begin` has run, whatever the callback order.
        control = _lr_control.get(self.model)
        if control is None:
            # A float learning rate is a variable; a schedule's is a tensor.
            is_float = isinstance(self.model.optimizer.learning_rate,
                                  keras.Variable)
        else:
            is_float = (isinstance(control.original, keras.Variable)
                        and control.schedule is None)
        if not is_float:
            _lr_control.release(self.model)
            raise ValueError(
                "Argument `swa_learning_rate` needs an optimizer created "
                "with a float learning rate and no schedule callback; this "
                "one follows a schedule. "
                f"Received: swa_learning_rate={self.swa_learning_rate}"
            )

    def _switch_learning_rate(self):
        control = _lr_control.get(self.model)
        if control is None:
            self.model.optimizer.learning_rate = self.swa_learning_rate
            return
        # Our LR callbacks hold the rate in a controller (the optimizer's
        # own setter refuses it): set the float it scales, unscaled.
        control.original.assign(self.swa_learning_rate)
        control.set_scale(1.0)

    def on_epoch_begin(self, epoch, logs=None):
        first, self._first_epoch = self._first_epoch, False
        if self.swa_learning_rate is None:
            return
        if first:
            self._check_float_learning_rate()
        if epoch == self.start_epoch or (first and epoch > self.start_epoch):
            self._switch_learning_rate()

    def on_epoch_end(self, epoch, logs=None):
        due = epoch >= self.start_epoch and (
            (epoch - self.start_epoch) % self.swa_freq == 0
        )
        if not due:
            return
        weights = [
            keras.ops.convert_to_numpy(w)
            for w in self.model.trainable_weights
        ]
        n = len(self.averaged_epochs)
        if self._average is None:
            self._average = weights
        else:
            self._average = [
                avg + (w - avg) / (n + 1)
                for avg, w in zip(self._average, weights, strict=True)
            ]
        self.averaged_epochs.append(epoch)

    def on_train_end(self, logs=None):
        if self._average is None:
            if self.verbose:
                print(f"SWA: training ended before epoch {self.start_epoch}; "
                      "weights left unchanged.")
            return
        for variable, value in zip(self.model.trainable_weights,
                                   self._average, strict=True):
            variable.assign(value)
        bn_layers = [b for b in _batch_norm_layers(self.model) if b.trainable]
        if bn_layers:
            self._reestimate(bn_layers)
        if self.verbose:
            print(f"SWA: averaged the weights of epochs "
                  f"{self.averaged_epochs}; re-estimated "
                  f"{len(bn_layers)} BatchNormalization layer(s).")

    def _batches(self):
        data = self.bn_data
        if hasattr(data, "shape"):
            for start in range(0, len(data), self.bn_batch_size):
                yield data[start:start + self.bn_batch_size]
            return
        for batch in data:
            if isinstance(batch, tuple):
                batch = keras.utils.unpack_x_y_sample_weight(batch)[0]
            yield batch

    def _reestimate(self, bn_layers):
        momenta = [layer.momentum for layer in bn_layers]
        for layer in bn_layers:
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
        try:
            for i, x in enumerate(self._batches()):
                # moving = m * moving + (1 - m) * batch with m = i / (i + 1)
                # keeps the equal-weight mean of the first i + 1 batches.
                for layer in bn_layers:
                    layer.momentum = i / (i + 1)
                self.model(x, training=True)
        finally:
            for layer, momentum in zip(bn_layers, momenta, strict=True):
                layer.momentum = momentum

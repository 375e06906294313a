"""`fit_image_classifier`: one call from a user's images to a trained model.

The recipe builds a model that takes raw images (rescaling, resizing,
grayscale-to-RGB and the backbone's own preprocessing are layers inside
it), trains it with the library's defaults and returns it with its history,
metrics and resolved configuration. A pretrained backbone is trained in two
phases (Yosinski et al., 2014; Howard & Ruder, 2018):

1. the backbone is frozen (its BatchNormalization layers in inference mode)
   and only the new head trains, with linear warmup then cosine decay;
2. the top blocks of the backbone are unfrozen (BatchNormalization stays
   frozen) and train with the head, from a fresh schedule at a tenth of the
   phase-1 peak for the head and a tenth of that for the backbone
   (discriminative learning rates).

A backbone trained from scratch (`"small_cnn"`, or `weights=None`) trains
in one phase with every layer trainable.
"""

import dataclasses
import os
import warnings

import keras
import numpy as np

import callbacks as cb
from recipes import (
    _optimization,
    _phases,
    _results,
    _run_dir,
    _runtime,
    distribute,
)
from recipes.backbones import (
    build_backbone,
    leaf_layers,
    preprocessing_layers,
    select_fine_tune_layers,
)
from recipes.data import (
    load_image_data,
    make_pipeline,
)

# `SCRATCH_LR_SCALE` and the `resolve_*` rules are also read from here.
from recipes.image_plan import (  # noqa: F401
    SCRATCH_LR_SCALE,
    ImageClassifierConfig,
    load_images,
    resolve,
    resolve_augment,
    resolve_backbone,
    resolve_epochs,
    resolve_image_size,
)
from recipes.layers.classifier_dense import ClassifierDense
from recipes.optimizers.discriminative import discriminative_optimizer

# Batch of the validation and test passes (at least the global training
# batch): inference keeps no activations for a backward pass, and bigger
# batches run faster (MNIST-5k validation, small_cnn, 2 CPU cores: 0.25 s
# per pass at batch 32, 0.14 s at 256). Results do not depend on it.
_EVAL_BATCH = 256


class ImageClassifierResult(_results.ClassifierResult):
    """What `fit_image_classifier` returns.

    Beyond `predict`, `predict_proba`, `evaluate` and `interpret` take
    `tta=True` for test-time augmentation over shifted views (and
    horizontally flipped ones for a model trained with flips, see
    `recipes.tta`).

    Attributes:
        model: The trained model; it takes raw images like the training
            data (same size, value range and channels) and outputs class
            probabilities.
        class_names: Class names; `model` output `i` is `class_names[i]`.
        history: Per-epoch training curves of both phases.
        metrics: `val_loss`, `val_accuracy` and, with `test_data`,
            `test_loss`, `test_accuracy`.
        config: The resolved configuration (as `run.json` records it).
        output_dir: The run directory, or `None`.
        plan: The `recipes.image_plan.ImageClassifierPlan` the run
            trained.
    """

    def _tta_policy(self, tta):
        from recipes.tta import resolve_tta

        return resolve_tta(tta, self.config.get("augment"))

    def _model_inputs(self, images):
        """`images` as a batch of the model's input shape.

        Accepts `(n, height, width)` or `(n, height, width, channels)`, or
        one image of shape `(height, width)` or `(height, width, channels)`.
        """
        images = np.asarray(images)
        received = images.shape
        expected = tuple(self.model.inputs[0].shape[1:])
        if images.shape in (expected, expected[:2]):
            images = images[None]  # a single image
        if images.ndim == len(expected):
            images = images[..., None]
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                "Argument `images` must hold images of shape "
                f"{expected} (or {expected[:2]} for one channel), one image "
                f"or a batch. Received: images.shape={received}"
            )
        _check_pixel_range(images, self.config.get("value_range"))
        return images

    def _input_kind(self, images):
        return "image", self._model_inputs(images)


def predict_classes(model, images, batch_size=256):
    """Class names a saved classifier predicts for `images`.

    For a model from `fit_image_classifier` (or any model ending in a
    `recipes.layers.ClassifierDense`), such as one reloaded with
    `recipes.load_model("runs/x/best.keras")`: the class names are read from
    the model itself, so the run's `run.json` is not needed.

    Args:
        model: A `keras.Model` whose last layer is a `ClassifierDense`.
        images: Raw images like the training images: an array of shape
            `(n, height, width)` or `(n, height, width, channels)`, or one
            image of shape `(height, width)` or `(height, width, channels)`.
        batch_size: Prediction batch size. Defaults to `256`.

    Returns:
        NumPy array of `n` class names (of one for a single image).

    Raises:
        ValueError: If the model does not end in a `ClassifierDense`, or
            the images do not have the model's input size.

    Example:

    >>> from recipes.backbones import small_cnn
    >>> model = build_image_classifier(
    ...     small_cnn((8, 8, 1)), "unit", input_shape=(8, 8, 1),
    ...     value_range=16.0, num_classes=2, class_names=["cat", "dog"])
    >>> str(predict_classes(model, np.zeros((8, 8)))[0]) in ("cat", "dog")
    True
    """
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if not isinstance(last, ClassifierDense):
        raise ValueError(
            "Argument `model` must end in a `recipes.layers.ClassifierDense` "
            "(models from `fit_image_classifier` do) to know its class "
            f"names. Received: a model whose last layer is {last!r}"
        )
    return _predict_names(model, last.class_names, images, batch_size)


def _predict_names(model, class_names, images, batch_size):
    images = np.asarray(images)
    received = images.shape
    expected = tuple(model.inputs[0].shape[1:])
    if images.shape in (expected, expected[:2]):
        images = images[None]  # a single image
    if images.ndim == len(expected):
        images = images[..., None]
    if tuple(images.shape[1:]) != expected:
        raise ValueError(
            "Argument `images` must hold images of shape "
            f"{expected} (or {expected[:2]} for one channel), one image "
            f"or a batch. Received: images.shape={received}"
        )
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    return np.asarray(class_names)[np.argmax(probabilities, -1)]


def _check_pixel_range(images, value_range):
    """Refuse pixels above the training range; warn on [0, 1] floats given
    to a model trained on [0, 255] (its rescaling would see them as near
    black, and the answers would be silently wrong)."""
    if value_range is None or images.size == 0:
        return
    top = float(np.max(images))
    if top > value_range * (1 + 1e-6):
        raise ValueError(
            f"Argument `images` must hold pixels in [0, {value_range:g}], "
            f"the range the model was trained on. Received: images="
            f"pixels up to {top:g}"
        )
    if value_range > 1 and images.dtype.kind == "f" and 0 < top <= 1.0:
        warnings.warn(
            f"`images` look like floats in [0, 1], but the model was "
            f"trained on pixels in [0, {value_range:g}]: its predictions "
            f"will be wrong. Multiply them by {value_range:g} first.",
            stacklevel=3)


def build_image_classifier(backbone_model, preprocessing, *, input_shape,
                           value_range, num_classes, dropout=0.2,
                           class_names=None):
    """Wrap a backbone into a classifier that takes raw images.

    Layers, in order: rescaling of `[0, value_range]` to `[0, 1]`, resizing
    to the backbone's input size, grayscale to RGB (channel copy) when the
    backbone needs 3 channels, the backbone's preprocessing, the backbone,
    global average pooling (for a 4D feature map), dropout, and a softmax
    `Dense` kept in float32 under mixed precision (its logits and softmax
    lose accuracy in float16); with `class_names`, a
    `recipes.layers.ClassifierDense`, so the names are saved with the model.

    Args:
        backbone_model: The backbone `keras.Model`.
        preprocessing: Its preprocessing mode (`BackboneInfo.preprocessing`);
            with `"none"` images reach it in their original range.
        input_shape: `(height, width, channels)` of the raw images.
        value_range: Maximum pixel value of the raw images (255 or 1).
        num_classes: Number of classes.
        dropout: Dropout rate before the classifier. Defaults to `0.2`.
        class_names: The `num_classes` class names, kept in the model.
            Defaults to `None` (a plain `Dense`).

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: If the images have 3 channels and the backbone takes 1.

    Example:

    >>> from recipes.backbones import small_cnn
    >>> model = build_image_classifier(
    ...     small_cnn((28, 28, 1)), "unit", input_shape=(28, 28, 1),
    ...     value_range=255.0, num_classes=10)
    >>> model.output.shape
    (None, 10)
    """
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    if preprocessing != "none":
        x = keras.layers.Rescaling(1.0 / value_range, name="rescale")(x)
    target = tuple(backbone_model.inputs[0].shape[1:])
    if None not in target[:2] and tuple(target[:2]) != tuple(
            input_shape[:2]):
        x = keras.layers.Resizing(*target[:2], name="resize")(x)
    if target[2] == 3 and input_shape[2] == 1:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    elif target[2] != input_shape[2]:
        raise ValueError(
            f"Argument `backbone` takes {target[2]}-channel images but the "
            f"data has {input_shape[2]} channels. Received: backbone input "
            f"shape {target}"
        )
    for layer in preprocessing_layers(preprocessing):
        x = layer(x)
    x = backbone_model(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif len(x.shape) != 2:
        raise ValueError(
            "Argument `backbone` must output a 4D feature map or 2D "
            f"features. Received: output shape {x.shape}"
        )
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    head = dict(activation="softmax", dtype="float32",
                name="recipe_classifier")
    if class_names is None:
        outputs = keras.layers.Dense(num_classes, **head)(x)
    else:
        outputs = ClassifierDense(class_names, units=num_classes, **head)(x)
    return keras.Model(inputs, outputs, name="image_classifier")


def fit_image_classifier(
        data, *, validation_data=None, validation_split=0.2,
        test_data=None, split="train", data_dir=None, class_names=None,
        backbone="auto", weights="auto", image_size=None, epochs="auto",
        fine_tune_epochs=None, fine_tune_layers="auto", unfreeze="at_once",
        backbone_lr_ratio=0.1, optimizer="adamw", learning_rate=None,
        schedule="warmup_cosine", warmup_fraction=0.05, label_smoothing=0.1,
        dropout=0.2, weight_decay=0.05, ema_momentum=0.93, augment="auto",
        mixup=0.0, cutmix=0.0, batch_size=32, early_stopping=True,
        patience=None, callbacks=None, strategy="auto", mixed_precision="auto",
        steps_per_execution="auto", output_dir=None, overwrite=False,
        seed=None, verbose=1, on_bad_image="raise"):
    """Train an image classifier, transfer learning included, in one call.

    Data may be NumPy arrays `(x, y)`, a directory of class sub-folders, a
    TensorFlow Datasets name or a `tf.data.Dataset` (see
    `recipes.data.load_image_data`). The model takes raw images like the
    training data; its backbone comes from the registry
    (`recipes.backbones.list_backbones()`), a `keras.Model` or a `.keras`
    file. Pretrained backbones are trained in two phases (frozen, then top
    blocks fine-tuned with discriminative learning rates); backbones trained
    from scratch in one.

    Every knob is a plain keyword, so a Keras Tuner `HyperModel` can pass
    `hp` values straight in.

    Args:
        data: Training images (see above).
        validation_data: Validation images of any supported kind (a split
            name such as `"test"` for a TFDS `data`). Defaults to `None`.
        validation_split: Fraction of `data` held out (stratified) when
            `validation_data` is `None`; 0 for none. Defaults to `0.2`.
        test_data: Images evaluated once at the end (`test_*` metrics).
            Defaults to `None`.
        split: TFDS split of `data`. Defaults to `"train"`.
        data_dir: TFDS data directory. Defaults to `None`.
        class_names: Class names for integer labels. Defaults to `None`
            (`"0"`, `"1"`, ... or the sub-folder / string label names).
        backbone: Registry name, a KerasHub preset as `"hub:<preset>"`
            (a preset name or `save_to_preset` directory; the `hub`
            extra, see `recipes.backbones.hub_backbone_info`),
            `keras.Model` or `.keras` path; `"auto"` picks `"small_cnn"`
            for images up to 64x64 pixels and `"efficientnetv2_b0"` above.
            Defaults to `"auto"`.
        weights: `"imagenet"`, `"preset"`, `None`, a weights file, or
            `"auto"` (ImageNet for ImageNet backbones, the preset's for
            KerasHub presets, none for `"small_cnn"`). A
            user model or `.keras` backbone keeps its weights: `"auto"`
            trains it as pretrained (two phases), `None` as a new
            architecture (one phase, every layer). Defaults to `"auto"`.
        image_size: Model input size `(height, width)` (or an int). Defaults
            to `None` (the backbone's native size, or the data's own size
            for `"small_cnn"` and user models).
        epochs: Epochs of phase 1 (or of the single phase), or `"auto"`:
            a budget of about 1,000 optimizer steps,
            `ceil(1000 / steps_per_epoch)` epochs but at least 10 and at
            most 60, for backbones trained from scratch and pretrained
            ones alike (see `resolve_epochs`). Early stopping ends a run
            sooner on a plateau. `result.config["epochs"]` holds the
            number used.
            Defaults to `"auto"`.
        fine_tune_epochs: Epochs of phase 2. Defaults to `None` (half of
            `epochs` for pretrained backbones; not allowed above 0 for
            backbones trained from scratch).
        fine_tune_layers: What phase 2 unfreezes: `"auto"` (the backbone's
            top blocks), `"all"`, a number of top layers with weights, or a
            layer name (from it to the top). Defaults to `"auto"`; only
            `"auto"` for backbones trained from scratch.
        unfreeze: How phase 2 unfreezes `fine_tune_layers`: `"at_once"`,
            or `"gradual"` (ULMFiT's gradual unfreezing,
            `callbacks.GradualUnfreezing`): the layers are split into one
            stage per phase-2 epoch (at most one layer per stage) and
            unfrozen from the top, one more stage per epoch. Defaults to
            `"at_once"`.
        backbone_lr_ratio: Backbone learning rate / head learning rate in
            phase 2. Defaults to `0.1`.
        optimizer: Name from `recipes.optimizers.list_optimizers()`.
            Defaults to `"adamw"`.
        learning_rate: Peak learning rate of phase 1; `None` uses the
            optimizer's registry default scaled to the global batch size
            (square-root rule), doubled for backbones trained from scratch
            (2e-3 for AdamW at batch 32); `"auto"` runs an LR range test
            (Smith, 2017) on the model first. Defaults to `None`.
        schedule: `"warmup_cosine"`, `"one_cycle"`, `"cyclical"` or
            `"constant"`. Defaults to `"warmup_cosine"`.
        warmup_fraction: Fraction of each phase's optimizer steps spent
            warming up (`"warmup_cosine"`), so the warmup scales with the
            run's length. It only has to carry the first updates, while
            AdamW's moment estimates and the new BatchNormalization
            statistics settle; the weight average (`ema_momentum`) smooths
            what follows, so a longer warmup mostly spends the budget below
            the peak rate. On the four data sets of `benchmarks/suite.py`
            (2 seeds each), 0.1 instead of 0.05 reached the keras.io
            convnet's final accuracy no sooner (within 2 epochs either way)
            and ended between 0.8 points lower and 1.2 points higher
            (`benchmarks/RESULTS.md`). Defaults to `0.05`.
        label_smoothing: Label smoothing of the cross-entropy. Defaults to
            `0.1`.
        dropout: Dropout before the classifier. Defaults to `0.2`.
        weight_decay: Decoupled weight decay (not on biases and norm
            parameters); `None` or 0 for none. Defaults to `0.05`.
        ema_momentum: Momentum of an exponential moving average of the
            weights (Polyak averaging, Keras's `use_ema`), updated every
            step; `None` for none. Validation, early stopping and the best
            model use the averaged weights, and the returned model holds
            them; the raw weights go on training. The average of roughly
            the last `1 / (1 - ema_momentum)` steps (about 14) evens out
            the step-to-step noise of a high learning rate, so the model
            validated is good before the rate has decayed. The window is
            in steps because that noise is per step and does not grow with
            the run; a much longer one lags behind training (early
            averages still hold early weights). On the four data sets of
            `benchmarks/suite.py` (2 seeds each), training without the
            average reached the keras.io convnet's final accuracy 0-7
            epochs later on three of them (on the fourth 2 epochs sooner
            in one seed, 1 later in the other) and ended as high or lower
            (by up to 0.4 points, and once by 7 points where early
            stopping ended a noisier run); momentum 0.98 (about 50 steps)
            reached it 6-16 epochs later on the two smallest
            (`benchmarks/RESULTS.md`). Defaults to `0.93`.
        augment: `"default"` (small shifts, rotations, zooms),
            `"flip"` (the same and horizontal flips), `"mirror"`
            (horizontal flips only), `"randaugment"`, `"none"`, Keras
            layers, or `"auto"`: `"default"` for pretrained backbones;
            from scratch, `"mirror"` for photographs and `"none"` for
            digits, text and line art (told apart by the share of pixels
            at the ends of the value range, see
            `recipes.image_plan.looks_like_photographs`). Within a budget
            of about 1,000 steps a network learning its features from
            nothing gained less from interpolated views (shifts,
            rotations, zooms) than it lost in slower fitting, and they
            blur small photographs' texture; a mirror resamples no pixel
            and is a new view of a photograph, while a mirrored digit is
            another symbol. Measured on five real data sets
            (`benchmarks/bench_augment.py`, `benchmarks/RESULTS.md`).
            Defaults to `"auto"`.
        mixup: MixUp alpha (0 disables). Defaults to `0.0`.
        cutmix: CutMix factor (0 disables). Defaults to `0.0`.
        batch_size: Per-replica training batch size: 32, Keras's own
            default. On a CPU a small network's epoch costs about the same
            at 32 as at larger batches (the work is per image), and the
            smaller batch gives a small data set more updates per epoch,
            which is what the training budget counts. Validation and test
            data are evaluated in batches of 256 (or the global training
            batch, if larger). Defaults to `32`.
        early_stopping: Stop when validation accuracy stalls and restore the
            best epoch. Defaults to `True`.
        patience: Early-stopping patience in epochs. Defaults to `None`
            (`max(3, epochs // 4)`, of the resolved `epochs`).
        callbacks: Extra Keras callbacks, added to every phase. Defaults
            to `None`.
        strategy: `"auto"`, a strategy name or a `tf.distribute.Strategy`
            (see `recipes.get_strategy`). Defaults to `"auto"`.
        mixed_precision: `"auto"`, `"float32"`, `"mixed_float16"` or
            `"mixed_bfloat16"`. Defaults to `"auto"`.
        steps_per_execution: Steps per compiled call; `"auto"` is 32
            (bounded by the epoch). Defaults to `"auto"`.
        output_dir: Directory for the final model (`model.keras`), the best
            model (`best.keras`, a hard link to `model.keras` when both are the
            same), `history.csv`, TensorBoard `logs/`, `run.json` (resolved
            config and metrics) and `training_curves.png`, and per-phase
            checkpoints (deleted once the run finishes): calling the recipe
            again with the same arguments after a crash resumes the run at its
            last completed epoch (finished phases are not retrained); other
            arguments are refused, listing each change. Its
            `.keras-recipes.json` lists what the recipe created, the only
            files it ever replaces or deletes. Under multi-worker training it
            must be a shared directory; only the chief writes it.
            Defaults to `None`.
        overwrite: Whether a finished run, an unfinished run of other
            arguments (started over) or your own files of the names the
            recipe writes (written over, never deleted) in `output_dir`
            may be replaced. Defaults to `False`.
        seed: Seed of weights, split, shuffling and augmentation. Defaults
            to `None`.
        verbose: 0 (silent), 1 (progress bars) or 2 (one line per epoch).
            Defaults to `1`.
        on_bad_image: For image folders, whose every image is decoded once
            before training: `"raise"` a `ValueError` naming a file that
            does not decode, or `"skip"` such files with a warning.
            Defaults to `"raise"`.

    Returns:
        An `ImageClassifierResult` (`model`, `predict`, `class_names`,
        `history`, `metrics`, `config`, `plot()`).

    Raises:
        ValueError: For bad data (see `load_image_data`) or arguments out
            of range, raised before training starts.
        TypeError: For arguments of the wrong type.

    Example:

    >>> from recipes.datasets import load_digits_8x8
    >>> (x, y), (xv, yv) = load_digits_8x8()
    >>> result = fit_image_classifier((x, y), validation_data=(xv, yv),
    ...                               epochs=2, verbose=0, seed=0)
    >>> sorted(result.metrics)
    ['val_accuracy', 'val_loss']

    References:
        - [Yosinski et al., 2014](https://arxiv.org/abs/1411.1792)
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146)
        - [Loshchilov & Hutter, 2019](https://arxiv.org/abs/1711.05101)
        - [Szegedy et al., 2016](https://arxiv.org/abs/1512.00567)
    """
    kw = dict(locals())
    config = ImageClassifierConfig(**{k: v for k, v in kw.items()
                                      if k != "data"})
    _check_output_outside_data(output_dir, data, validation_data)
    out = _run_dir.OutputDir(output_dir, overwrite,
                              settings=_run_dir.run_settings(kw))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    runtime = _runtime.resolve_runtime(strategy, mixed_precision,
                                        batch_size)
    images = load_images(config, data, verbose=int(verbose > 0))
    test = None if test_data is None else _load_test(
        data, test_data, images, split, data_dir,
        resolve_image_size(image_size, backbone), on_bad_image)
    plan = resolve(config, images, runtime)
    model, backbone_model, info, unfrozen = _build(config, plan, images,
                                                   runtime)
    out.open()
    train, val, make_train = _pipelines(config, plan, images, runtime)
    loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing)
    peak, finder = _optimization.resolve_learning_rate(
        learning_rate, model=model, make_train=make_train, loss=loss,
        out=out, runtime=runtime, optimizer=optimizer, verbose=verbose,
        make_optimizer=lambda rate: _optimization.make_optimizer(
            optimizer, rate, weight_decay),
        default_scale=plan.learning_rate_scale,
        num_examples=images.num_train)
    history = _phases.run_phases(
        model, _training_phases(config, plan, model, backbone_model,
                                unfrozen, peak),
        _phases.Training.of_run(config, plan, train=train, val=val,
                                loss=loss, runtime=runtime, out=out))
    metrics = _results.evaluate_splits(model, runtime.strategy, val=val,
                                        test=test)
    recorded = _run_config(config, plan, images, runtime, info, unfrozen,
                           peak, finder, history)
    out.write(model, recorded, metrics, history)
    return ImageClassifierResult(model, images.class_names, history, metrics,
                                 recorded, out.path, plan=plan)


def _build(config, plan, images, runtime):
    """The model of `plan`, its backbone (frozen when pretrained), the
    backbone's `BackboneInfo` and the layers phase 2 unfreezes."""
    with _runtime.precision_policy(runtime.policy), \
            runtime.strategy.scope():
        backbone_model, info, _ = build_backbone(
            plan.backbone, config.weights,
            input_shape=plan.backbone_input_shape)
        # Chosen now, so a misspelt layer name fails before phase 1 trains.
        unfrozen = (select_fine_tune_layers(backbone_model, info,
                                            config.fine_tune_layers)
                    if plan.pretrained and plan.fine_tune_epochs else [])
        model = build_image_classifier(
            backbone_model, info.preprocessing,
            input_shape=plan.input_shape, value_range=images.value_range,
            num_classes=images.num_classes, dropout=config.dropout,
            class_names=images.class_names)
        if plan.pretrained:
            backbone_model.trainable = False
    model = distribute.prepare_model(model, runtime.strategy)
    return model, backbone_model, info, unfrozen


def _pipelines(config, plan, images, runtime):
    """`(train, val, make_train)`: the training and validation pipelines,
    and a maker of fresh training pipelines (for the LR range test)."""
    pipeline = dict(num_classes=images.num_classes,
                    batch_size=runtime.batch_size,
                    image_size=plan.image_size,
                    cache=images.source != "numpy")

    def make_train():
        return make_pipeline(
            images.train, training=True, num_examples=images.num_train,
            augment=plan.augment, value_range=images.value_range,
            mixup=config.mixup, cutmix=config.cutmix, seed=config.seed,
            **pipeline)

    train = make_train()
    val = None
    if images.validation is not None:
        val = make_pipeline(
            images.validation, training=False,
            num_examples=images.num_validation,
            **{**pipeline,
               "batch_size": max(runtime.batch_size, _EVAL_BATCH)})
    return train, val, make_train


def _training_phases(config, plan, model, backbone_model, unfrozen, peak):
    """Phase 1 (the head, or every layer from scratch) at `peak`, and for
    a pretrained backbone with `unfrozen` layers phase 2: those layers
    unfrozen (at once or gradually) at a tenth of `peak` for the head and
    `backbone_lr_ratio` of that for the backbone."""
    def make_optimizer(rate):
        return _optimization.make_optimizer(
            config.optimizer, rate, config.weight_decay, config.ema_momentum)

    phases = [_phases.Phase(1, plan.epochs, lambda s: make_optimizer(
        s(peak)))]
    if not unfrozen:
        return phases

    def unfreeze_top():
        backbone_model.trainable = True
        chosen = {id(layer) for layer in unfrozen}
        for layer in leaf_layers(backbone_model):
            layer.trainable = id(layer) in chosen

    def two_rates(schedule):
        return discriminative_optimizer(
            model, make_optimizer(schedule(peak / 10)),
            groups=[backbone_model], lr_mult=[config.backbone_lr_ratio])

    def gradual(first_epoch):
        stages = _gradual_stages(unfrozen, plan.fine_tune_epochs)
        return [cb.GradualUnfreezing(stages, unfreeze_at=[
            first_epoch + k for k in range(len(stages))])]

    return [*phases, _phases.Phase(
        2, plan.fine_tune_epochs, two_rates, setup=unfreeze_top,
        callbacks=gradual if config.unfreeze == "gradual" else None)]


def _run_config(config, plan, images, runtime, info, unfrozen, peak,
                finder, history):
    """The resolved configuration `run.json` and `result.config` hold."""
    return {
        "backbone": info.name,
        "weights": _describe_weights(config.weights, info),
        "pretrained": plan.pretrained, "input_shape": plan.input_shape,
        "value_range": images.value_range,
        "class_names": images.class_names, "data_source": images.source,
        "num_train": images.num_train,
        "num_validation": images.num_validation,
        "epochs": plan.epochs, "fine_tune_epochs": plan.fine_tune_epochs,
        "fine_tune_layers": [layer.name for layer in unfrozen],
        "unfreeze": config.unfreeze,
        "backbone_lr_ratio": config.backbone_lr_ratio,
        "dropout": config.dropout, "augment": plan.augment,
        "mixup": config.mixup, "cutmix": config.cutmix,
        **_results.recipe_training_config(
            config, plan, runtime=runtime, learning_rate=peak,
            used_lr_finder=finder, history=history),
    }


def _check_output_outside_data(output_dir, *folders):
    """A run directory inside an image folder would be read back as a
    class folder (its plots as images) by the next run on that folder."""
    if output_dir is None:
        return
    out = os.path.realpath(os.fspath(output_dir))
    for folder in folders:
        if isinstance(folder, str | os.PathLike) and os.path.isdir(folder):
            root = os.path.realpath(os.fspath(folder))
            if os.path.commonpath([out, root]) == root:
                raise ValueError(
                    "Argument `output_dir` must not be inside the image "
                    f"folder {os.fspath(folder)!r} (a later run would read "
                    "it as a class of images). Received: output_dir="
                    f"{os.fspath(output_dir)!r}"
                )


def _gradual_stages(layers, epochs):
    """`layers` (input first) in `min(epochs, len(layers))` contiguous
    stages, the lower stages the larger when they do not divide evenly."""
    count = min(epochs, len(layers))
    size, extra = divmod(len(layers), count)
    stages, start = [], 0
    for k in range(count):
        end = start + size + (k < extra)
        stages.append(layers[start:end])
        start = end
    return stages


def _describe_weights(weights, info):
    if weights == "auto":
        return info.pretrained_weights[0] if info.pretrained_weights else (
            None if info.builder is not None else "user model")
    return weights if weights is None else os.fspath(weights)


def _load_test(data, test_data, images, split, data_dir, size,
               on_bad_image="raise"):
    same_tfds = (images.source == "tfds" and isinstance(test_data, str)
                 and not os.path.exists(test_data))
    loaded = load_image_data(
        data if same_tfds else test_data, validation_split=0.0,
        split=test_data if same_tfds else split, data_dir=data_dir,
        image_size=size, class_names=images.class_names,
        on_bad_image=on_bad_image)
    if loaded.image_shape != images.image_shape:
        raise ValueError(
            "Argument `test_data` must hold images of the training shape "
            f"{images.image_shape}. Received: shape {loaded.image_shape}"
        )
    if loaded.value_range != images.value_range:
        raise ValueError(
            "Argument `test_data` must hold pixels in the training images' "
            f"range [0, {images.value_range:g}]. Received: pixels in "
            f"[0, {loaded.value_range:g}]"
        )
    return make_pipeline(loaded.train, num_classes=images.num_classes,
                         batch_size=_EVAL_BATCH, training=False,
                         num_examples=loaded.num_train, image_size=size,
                         cache=False)


def check_image_classifier_args(**kwargs):
    """Check `fit_image_classifier` keywords without loading data or training.

    Runs the argument checks `fit_image_classifier` runs before it starts,
    on the given keywords (the others at their defaults), so that a caller
    that trains later, such as a tuner, can refuse bad values before any
    work. Data arguments are not loaded, so they are not checked here.

    Args:
        **kwargs: Keyword arguments of `fit_image_classifier` (not `data`).

    Raises:
        TypeError: For a keyword `fit_image_classifier` does not take, or a
            value of the wrong type.
        ValueError: For a value out of range or an unknown name (optimizer,
            schedule, backbone, augmentation).

    Example:

    >>> check_image_classifier_args(dropout=0.3, optimizer="lion")
    >>> check_image_classifier_args(dropout=2.0)
    Traceback (most recent call last):
    ValueError: Argument `dropout` must be < 1.0. Received: dropout=2.0
    """
    fields = {f.name for f in dataclasses.fields(ImageClassifierConfig)}
    unknown = sorted(name for name in kwargs if name not in fields)
    if unknown:
        raise TypeError(
            "Unrecognized keyword arguments of `fit_image_classifier`: "
            f"{unknown}. Received: "
            f"{ {k: kwargs[k] for k in unknown} }"
        )
    ImageClassifierConfig(**kwargs)


def plan_image_classifier(data, **kwargs):
    """What `fit_image_classifier(data, **kwargs)` would train, untrained.

    Runs the recipe's argument checks, loads `data` as the recipe loads it
    and settles every `"auto"` (backbone, epochs, patience, augmentation,
    learning-rate scale, input shapes, steps per epoch and per call) with
    the same rules, for a look before a long run. It builds no model,
    trains nothing and writes no file (`output_dir` is not touched); the
    result equals the `result.plan` of the run these arguments start.
    `learning_rate="auto"` stays a range test the run would do.

    Args:
        data: Training images, as `fit_image_classifier` takes them.
        **kwargs: Other keyword arguments of `fit_image_classifier`.

    Returns:
        A `recipes.ImageClassifierPlan`.

    Raises:
        TypeError: For a keyword `fit_image_classifier` does not take, or a
            value of the wrong type.
        ValueError: For bad data or values out of range, as the recipe
            raises them.

    Example:

    >>> from recipes.datasets import load_digits_8x8
    >>> (x, y), _ = load_digits_8x8()
    >>> plan = plan_image_classifier((x, y), batch_size=32)
    >>> plan.backbone, plan.steps_per_epoch, plan.epochs
    ('small_cnn', 38, 27)
    """
    check_image_classifier_args(**kwargs)
    config = ImageClassifierConfig(**kwargs)
    runtime = _runtime.resolve_runtime(config.strategy,
                                        config.mixed_precision,
                                        config.batch_size)
    return resolve(config, load_images(config, data), runtime)

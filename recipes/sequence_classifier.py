"""`fit_sequence_classifier`: LSTM/GRU classifiers of sequences in one call.

The recipe builds a recurrent classifier that takes raw sequences like the
training data: numeric `(timesteps, features)` sequences, masked where they
hold the padding value, or raw strings, vectorized inside the model by a
`TextVectorization` layer adapted on the training split and embedded with
padding masked. Stacked LSTM (Hochreiter & Schmidhuber, 1997) or GRU (Cho
et al., 2014) layers, bidirectional by default (Schuster & Paliwal, 1997),
feed a softmax classifier. Training shares the image recipe's machinery
(strategy, precision, optimizer registry, warmup-cosine schedule, early
stopping, run directory) and adds gradient clipping by global norm, on by
default: the gradients of a recurrent network are products over time steps
of the recurrent Jacobian and can grow exponentially with the sequence
length; clipping their norm keeps one such step from throwing the weights
far off (Pascanu et al., 2013).
"""

import math

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from callbacks import DivergenceError
from callbacks._internal import check_choice, check_number
from recipes import (
    _checks,
    _optimization,
    _phases,
    _results,
    _run_dir,
    _runtime,
    distribute,
)
from recipes.sequence_data import (
    load_sequence_data,
    make_sequence_pipeline,
    sequences_to_array,
)
from recipes.sequence_plan import (
    CELLS,
    SequenceClassifierConfig,
    check_model_args,
    resolve,
)


def build_sequence_classifier(*, num_classes, num_features=None,
                              vectorizer=None, cell="lstm",
                              bidirectional=True, units=64, layers=1,
                              dropout=0.1, recurrent_dropout=0.0,
                              padding_value=None, embedding_dim=64):
    """Build a recurrent classifier of numeric sequences or raw strings.

    Layers, in order: for numeric sequences of shape `(timesteps,
    num_features)` (any number of time steps) a `Masking` layer when
    `padding_value` is set; for strings the adapted `vectorizer` and an
    `Embedding` masking the padding token 0. Then `layers` recurrent layers
    (all but the last return sequences), each wrapped in `Bidirectional`
    when asked, dropout, and a softmax `Dense` kept in float32 under mixed
    precision.

    Args:
        num_classes: Number of classes.
        num_features: Features per time step (numeric sequences). Defaults
            to `None`.
        vectorizer: An adapted `keras.layers.TextVectorization` for string
            inputs. Defaults to `None` (numeric inputs).
        cell: `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        bidirectional: Whether each recurrent layer reads both directions.
            Defaults to `True`.
        units: Units per recurrent layer (and direction). Defaults to `64`.
        layers: Number of stacked recurrent layers. Defaults to `1`.
        dropout: Dropout of the recurrent layers' inputs and before the
            classifier. Defaults to `0.1`.
        recurrent_dropout: Dropout of the recurrent state (Gal &
            Ghahramani, 2016); above 0 it disables the fused cuDNN kernels
            on GPUs. Defaults to `0.0`.
        padding_value: Time steps whose features all equal this value are
            masked (numeric inputs). Defaults to `None`.
        embedding_dim: Embedding size of the tokens (string inputs).
            Defaults to `64`.

    Returns:
        A functional `keras.Model`.

    Example:

    >>> model = build_sequence_classifier(num_classes=10, num_features=28,
    ...                                   cell="gru", padding_value=-1.0)
    >>> model.output.shape
    (None, 10)
    """
    if vectorizer is not None:
        inputs = keras.Input((), dtype="string", name="text")
        x = vectorizer(inputs)
        x = keras.layers.Embedding(vectorizer.vocabulary_size(),
                                   embedding_dim, mask_zero=True,
                                   name="embedding")(x)
    else:
        inputs = keras.Input((None, num_features), name="sequences")
        x = inputs
        if padding_value is not None:
            x = keras.layers.Masking(mask_value=float(padding_value),
                                     name="mask")(x)
    for i in range(layers):
        rnn = CELLS[cell](units, return_sequences=i < layers - 1,
                          dropout=dropout,
                          recurrent_dropout=recurrent_dropout,
                          name=f"{cell}_{i}")
        if bidirectional:
            rnn = keras.layers.Bidirectional(rnn, name=f"bidirectional_{i}")
        x = rnn(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 dtype="float32", name="recipe_classifier")(x)
    return keras.Model(inputs, outputs, name="sequence_classifier")


def make_clipped_optimizer(name, learning_rate, weight_decay, clipnorm):
    """An optimizer from the registry whose gradients are clipped.

    The gradients of all variables are rescaled together when their global
    norm exceeds `clipnorm` (Pascanu et al., 2013), which keeps their
    direction.

    Args:
        name: A name from `recipes.optimizers.list_optimizers()`.
        learning_rate: A float or a schedule.
        weight_decay: Decoupled weight decay, or `None`/0 for none.
        clipnorm: Maximal global norm of the gradients, or `None` for none.

    Returns:
        A new `keras.optimizers.Optimizer`.

    Example:

    >>> opt = make_clipped_optimizer("adamw", 1e-3, 0.01, 1.0)
    >>> opt.global_clipnorm
    1.0
    """
    optimizer = _optimization.make_optimizer(name, learning_rate, weight_decay)
    # Keras reads `global_clipnorm` when it applies gradients; wrappers such
    # as Lookahead leave the update, clipping included, to their inner one.
    target = getattr(optimizer, "inner_optimizer", optimizer)
    target.global_clipnorm = None if clipnorm is None else float(clipnorm)
    return optimizer


class SequenceClassifierResult(_results.ClassifierResult):
    """What `fit_sequence_classifier` returns.

    `predict`, `predict_proba`, `evaluate` and `interpret` take raw
    sequences like the training data.

    Attributes:
        model: The trained model; it takes sequences like the training data
            (numeric `(n, timesteps, features)` arrays, padded with
            `padding_value` where masked, or 1D arrays of strings) and
            outputs class probabilities.
        class_names: Class names; `model` output `i` is `class_names[i]`.
        padding_value: The padding value of numeric sequences, or `None`.
        history: Per-epoch training curves.
        metrics: `val_loss`, `val_accuracy` and, with `test_data`,
            `test_loss`, `test_accuracy`.
        config: The resolved configuration (as `run.json` records it).
        output_dir: The run directory, or `None`.
        plan: The `recipes.sequence_plan.SequenceClassifierPlan` the run
            trained.
    """

    def __init__(self, model, class_names, history, metrics, config,
                 output_dir=None, padding_value=None, plan=None):
        super().__init__(model, class_names, history, metrics, config,
                         output_dir, plan)
        self.padding_value = padding_value

    def _is_text(self):
        return self.model.inputs[0].dtype == "string"

    def _text(self, sequences):
        x = np.asarray(sequences, dtype=str)
        if x.ndim != 1:
            raise ValueError(
                "Argument `sequences` must hold one string per example. "
                f"Received: strings of shape {x.shape}"
            )
        return x

    def _model_inputs(self, sequences):
        """A `(n, timesteps, features)` array, a list of `n` sequences of
        different lengths (padded with `padding_value`), or `n` strings for
        a text model, as the model's input."""
        if self._is_text():
            # Keras's array adapters take no NumPy unicode arrays.
            return tf.constant(self._text(sequences).astype(object))
        return sequences_to_array(sequences, "sequences", self.padding_value)

    def _input_kind(self, sequences):
        if self._is_text():
            return "text", self._text(sequences)
        return "sequence", sequences_to_array(sequences, "sequences",
                                              self.padding_value)


def _adapted_vectorizer(train, max_tokens, max_length, vocabulary=None):
    """A `TextVectorization` adapted on the training strings only."""
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=max_length,
        vocabulary=vocabulary, name="vectorizer")
    if vocabulary is None:
        vectorizer.adapt(train.map(lambda x, y: x).batch(512))
    return vectorizer


def _load_test(test_data, seqs):
    loaded = load_sequence_data(test_data, validation_split=0.0,
                                padding_value=seqs.padding_value,
                                class_names=seqs.class_names)
    if (loaded.kind, loaded.num_features) != (seqs.kind, seqs.num_features):
        raise ValueError(
            f"Argument `test_data` must hold {seqs.kind} sequences like the "
            f"training data (features={seqs.num_features}). Received: "
            f"{loaded.kind} sequences (features={loaded.num_features})"
        )
    return make_sequence_pipeline(
        loaded.train, num_classes=seqs.num_classes, batch_size=256,
        training=False, padding_value=seqs.padding_value, cache=False)


def fit_sequence_classifier(
        data, *, validation_data=None, validation_split=0.2, test_data=None,
        class_names=None, padding_value=None, cell="lstm",
        bidirectional=True, units=64, layers=1, dropout=0.1,
        recurrent_dropout=0.0, max_tokens=20000, max_length=256,
        embedding_dim=64, epochs=10, optimizer="adamw", learning_rate=None,
        schedule="warmup_cosine", warmup_fraction=0.1, clipnorm=1.0,
        label_smoothing=0.1, weight_decay=0.01, batch_size=64,
        early_stopping=True, patience=None, callbacks=None, strategy="auto",
        mixed_precision="auto", steps_per_execution="auto", output_dir=None,
        overwrite=False, seed=None, verbose=1):
    """Train an LSTM or GRU sequence classifier in one call.

    Data may be numeric sequences `(x, y)` with `x` of shape `(n,
    timesteps, features)`, a list of sequences of different lengths (padded
    with `padding_value`, then masked), raw strings (a `TextVectorization`
    layer adapted on the training split, then an `Embedding`), or a
    `tf.data.Dataset` of any of these (see
    `recipes.sequence_data.load_sequence_data`). The model takes raw
    sequences like the training data, so the saved `.keras` file is all a
    user needs (the text vocabulary is saved inside it).

    Gradients are clipped to a global norm of `clipnorm` by default:
    backpropagation through time multiplies the recurrent Jacobian once per
    time step, so gradient norms can explode on long sequences (Pascanu et
    al., 2013); rescaling them keeps their direction and bounds the step.

    Every knob is a plain keyword, so a Keras Tuner `HyperModel` can pass
    `hp` values straight in (see `SequenceClassifierHyperModel`).

    Args:
        data: Training sequences (see above).
        validation_data: Validation sequences of the same kind. Defaults to
            `None`.
        validation_split: Fraction of `data` held out (stratified) when
            `validation_data` is `None`; 0 for none. Defaults to `0.2`.
        test_data: Sequences evaluated once at the end (`test_*` metrics).
            Defaults to `None`.
        class_names: Class names for integer labels. Defaults to `None`
            (`"0"`, `"1"`, ... or the sorted string labels).
        padding_value: Value of padded time steps in numeric sequences;
            time steps whose features all equal it are masked. Required for
            sequences of different lengths; it must not be a value real
            time steps take (0 is a bad choice for data holding rows of
            zeros). Defaults to `None` (no masking).
        cell: `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        bidirectional: Whether each recurrent layer reads both directions.
            Defaults to `True`.
        units: Units per recurrent layer and direction. Defaults to `64`.
        layers: Number of stacked recurrent layers. Defaults to `1`.
        dropout: Dropout of the recurrent layers' inputs and before the
            classifier. Defaults to `0.1`.
        recurrent_dropout: Dropout of the recurrent state; above 0 it
            disables the fused cuDNN kernels on GPUs. Defaults to `0.0`.
        max_tokens: Vocabulary size (text only). Defaults to `20000`.
        max_length: Tokens kept per text (the first ones; text only);
            `None` pads each batch to its longest text. Defaults to `256`.
        embedding_dim: Token embedding size (text only). Defaults to `64`.
        epochs: Training epochs. Defaults to `10`.
        optimizer: Name from `recipes.optimizers.list_optimizers()`.
            Defaults to `"adamw"`.
        learning_rate: Peak learning rate; `None` uses the optimizer's
            registry default scaled to the global batch size (square-root
            rule); `"auto"` runs an LR range test on the model first.
            Defaults to `None`.
        schedule: `"warmup_cosine"`, `"one_cycle"`, `"cyclical"` or
            `"constant"`. Defaults to `"warmup_cosine"`.
        warmup_fraction: Fraction of training spent warming up
            (`"warmup_cosine"`). Defaults to `0.1`.
        clipnorm: Maximal global norm of the gradients; `None` disables
            clipping. Defaults to `1.0`.
        label_smoothing: Label smoothing of the cross-entropy. Defaults to
            `0.1`.
        weight_decay: Decoupled weight decay (not on biases); `None` or 0
            for none. Defaults to `0.01`.
        batch_size: Per-replica batch size. Defaults to `64`.
        early_stopping: Stop when validation accuracy stalls and restore the
            best epoch. Defaults to `True`.
        patience: Early-stopping patience in epochs. Defaults to `None`
            (`max(3, epochs // 4)`).
        callbacks: Extra Keras callbacks. Defaults to `None`.
        strategy: `"auto"`, a strategy name or a `tf.distribute.Strategy`
            (see `recipes.get_strategy`). Defaults to `"auto"`.
        mixed_precision: `"auto"`, `"float32"`, `"mixed_float16"` or
            `"mixed_bfloat16"`. Defaults to `"auto"`.
        steps_per_execution: Steps per compiled call; `"auto"` is 32
            (bounded by the epoch). Defaults to `"auto"`.
        output_dir: Directory for `model.keras`, `best.keras` (a hard
            link to `model.keras` when both are the same), `history.csv`,
            TensorBoard `logs/`, `run.json` (resolved config and metrics),
            `training_curves.png` and checkpoints (deleted once the run
            finishes): calling the recipe again with the same arguments
            after a crash resumes the run at its last completed epoch;
            other arguments are refused. Its `.keras-recipes.json` lists
            what the recipe created, the only files it ever replaces or
            deletes. Defaults to `None`.
        overwrite: Whether a finished run, an unfinished run of other
            arguments (started over) or your own files of the names the
            recipe writes (written over, never deleted) in `output_dir`
            may be replaced. Defaults to `False`.
        seed: Seed of weights, split and shuffling. Defaults to `None`.
        verbose: 0 (silent), 1 (progress bars) or 2 (one line per epoch).
            Defaults to `1`.

    Returns:
        A `SequenceClassifierResult` (`model`, `predict`, `class_names`,
        `history`, `metrics`, `config`, `plot()`).

    Raises:
        ValueError: For bad data (see `load_sequence_data`) or arguments
            out of range, raised before training starts.
        TypeError: For arguments of the wrong type.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 12, 3)).astype("float32")
    >>> y = (x[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> result = fit_sequence_classifier((x, y), units=8, epochs=1,
    ...                                  verbose=0, seed=0)
    >>> sorted(result.metrics)
    ['val_accuracy', 'val_loss']

    References:
        - [Hochreiter & Schmidhuber, 1997](
          https://doi.org/10.1162/neco.1997.9.8.1735)
        - [Cho et al., 2014](https://arxiv.org/abs/1406.1078)
        - [Schuster & Paliwal, 1997](https://doi.org/10.1109/78.650093)
        - [Pascanu et al., 2013](https://arxiv.org/abs/1211.5063)
        - [Gal & Ghahramani, 2016](https://arxiv.org/abs/1512.05287)
        - [Le et al., 2015](https://arxiv.org/abs/1504.00941) (sequential
          MNIST)
    """
    kw = dict(locals())
    config = SequenceClassifierConfig(**{k: v for k, v in kw.items()
                                         if k != "data"})
    out = _run_dir.OutputDir(output_dir, overwrite,
                              settings=_run_dir.run_settings(kw))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    runtime = _runtime.resolve_runtime(strategy, mixed_precision,
                                        batch_size)
    seqs = load_sequence_data(
        data, validation_data=validation_data,
        validation_split=validation_split, padding_value=padding_value,
        class_names=class_names, seed=seed or 0)
    test = None if test_data is None else _load_test(test_data, seqs)

    model, vectorizer = _build(config, seqs, runtime)
    out.open()
    train, val, make_train = _pipelines(config, seqs, runtime)
    plan = resolve(config, seqs, runtime)
    loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing)
    peak, finder = _optimization.resolve_learning_rate(
        learning_rate, model=model, make_train=make_train, loss=loss,
        out=out, runtime=runtime, optimizer=optimizer, verbose=verbose,
        make_optimizer=lambda rate: make_clipped_optimizer(
            optimizer, rate, weight_decay, clipnorm),
        num_examples=seqs.num_train)
    phase = _phases.Phase(1, plan.epochs, lambda s: make_clipped_optimizer(
        optimizer, s(peak), weight_decay, clipnorm))
    history = _phases.run_phases(model, [phase], _phases.Training.of_run(
        config, plan, train=train, val=val, loss=loss, runtime=runtime,
        out=out))
    metrics = _results.evaluate_splits(model, runtime.strategy, val=val,
                                        test=test)
    recorded = _run_config(config, plan, seqs, runtime, vectorizer, peak,
                           finder, history)
    out.write(model, recorded, metrics, history)
    return SequenceClassifierResult(model, seqs.class_names, history,
                                    metrics, recorded, out.path,
                                    padding_value=padding_value, plan=plan)


def _build(config, seqs, runtime):
    """The model for `config` and the data, and its adapted vectorizer
    (text) or `None`."""
    with _runtime.precision_policy(runtime.policy), \
            runtime.strategy.scope():
        vectorizer = None
        if seqs.kind == "text":
            vectorizer = _adapted_vectorizer(seqs.train, config.max_tokens,
                                             config.max_length)
        model = build_sequence_classifier(
            num_classes=seqs.num_classes, num_features=seqs.num_features,
            vectorizer=vectorizer, cell=config.cell,
            bidirectional=config.bidirectional, units=config.units,
            layers=config.layers, dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout,
            padding_value=config.padding_value,
            embedding_dim=config.embedding_dim)
    return distribute.prepare_model(model, runtime.strategy), vectorizer


def _pipelines(config, seqs, runtime):
    """`(train, val, make_train)`: the training and validation pipelines,
    and a maker of fresh training pipelines (for the LR range test)."""
    pipeline = dict(num_classes=seqs.num_classes,
                    batch_size=runtime.batch_size,
                    padding_value=config.padding_value,
                    cache=seqs.source == "dataset")

    def make_train():
        return make_sequence_pipeline(seqs.train, training=True,
                                      num_examples=seqs.num_train,
                                      seed=config.seed, **pipeline)

    train = make_train()
    val = None
    if seqs.validation is not None:
        val = make_sequence_pipeline(seqs.validation, training=False,
                                     num_examples=seqs.num_validation,
                                     **pipeline)
    return train, val, make_train


def _run_config(config, plan, seqs, runtime, vectorizer, peak, finder,
                history):
    """The resolved configuration `run.json` and `result.config` hold."""
    return {
        "cell": config.cell, "bidirectional": config.bidirectional,
        "units": config.units, "layers": config.layers,
        "dropout": config.dropout,
        "recurrent_dropout": config.recurrent_dropout, "kind": seqs.kind,
        "num_features": seqs.num_features,
        "padding_value": config.padding_value,
        "vocabulary_size": (vectorizer.vocabulary_size() if vectorizer
                            else None),
        "max_tokens": config.max_tokens if vectorizer else None,
        "max_length": config.max_length if vectorizer else None,
        "embedding_dim": config.embedding_dim if vectorizer else None,
        "class_names": seqs.class_names, "data_source": seqs.source,
        "num_train": seqs.num_train, "num_validation": seqs.num_validation,
        "epochs": plan.epochs, "clipnorm": config.clipnorm,
        **_results.recipe_training_config(
            config, plan, runtime=runtime, learning_rate=peak,
            used_lr_finder=finder, history=history),
    }


class SequenceClassifierHyperModel(keras_tuner.HyperModel):
    """Keras Tuner `HyperModel` of the sequence recipe.

    The data are loaded, split and (for text) vectorized once; each trial
    builds a classifier with `build_sequence_classifier` from the sampled
    hyperparameters and trains it like `fit_sequence_classifier` (registry
    optimizer, clipped gradients, warmup-cosine schedule over the trial's
    epochs). Search space, with the recipe's defaults as defaults:

    * `cell`: `"lstm"` or `"gru"`;
    * `bidirectional`: a boolean;
    * `units`: 32, 64 or 128;
    * `layers`: 1 or 2;
    * `dropout`: 0 to 0.5 by steps of 0.1;
    * `learning_rate`: 1e-4 to 1e-2, log-uniform (default: the optimizer's
      registry default scaled to the batch size);
    * `clipnorm`: 0.5, 1 or 5.

    Each trial trains through the recipe's own phase mechanism
    (`recipes._phases.run_phases`, as `fit_sequence_classifier` does): the
    same compiled optimizer and schedule, the same guard against a
    diverging loss (a trial whose learning-rate cuts do not help fails with
    `keras_tuner.errors.FailedTrialError`, and the search goes on), and the
    same early stopping on validation accuracy with the best weights
    restored. Tuners pass `epochs`, `callbacks` and `verbose` of `search`
    to `fit`; the training and validation data are those given here (the
    objective is `"val_accuracy"`). Under Hyperband a promoted trial
    continues from its parent's weights (which Keras Tuner loads into the
    model) for the `epochs - initial_epoch` epochs it has left, with the
    optimizer and schedule started anew over those epochs.

    Args:
        data: Training sequences, any kind `fit_sequence_classifier` takes.
        validation_data: Validation sequences. Defaults to `None`.
        validation_split: Fraction held out when `validation_data` is
            `None`; must leave a validation set. Defaults to `0.2`.
        padding_value: As in `fit_sequence_classifier`. Defaults to `None`.
        class_names: Class names for integer labels. Defaults to `None`.
        max_tokens: Vocabulary size (text). Defaults to `20000`.
        max_length: Tokens kept per text. Defaults to `256`.
        embedding_dim: Token embedding size (text). Defaults to `64`.
        optimizer: Registry name of the optimizer. Defaults to `"adamw"`.
        schedule: Schedule name (as in the recipe). Defaults to
            `"warmup_cosine"`.
        warmup_fraction: Warmup fraction. Defaults to `0.1`.
        label_smoothing: Label smoothing. Defaults to `0.1`.
        weight_decay: Decoupled weight decay. Defaults to `0.01`.
        batch_size: Batch size. Defaults to `64`.
        early_stopping: Stop a trial when validation accuracy stalls and
            restore its best weights. Defaults to `True`.
        patience: Early-stopping patience in epochs; `None` is a quarter
            of the trial's epochs, at least 3. Defaults to `None`.
        seed: Seed of the split and shuffling. Defaults to `0`.
        name: Name of the HyperModel. Defaults to `None`.
        tunable: Whether its hyperparameters are tuned. Defaults to `True`.

    Raises:
        ValueError: For bad data or arguments, or no validation data.

    Example:

    >>> import keras_tuner
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 12, 3)).astype("float32")
    >>> y = (x[:, :, 0].sum(axis=1) > 0).astype(int)
    >>> hypermodel = SequenceClassifierHyperModel((x, y))
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> model.output.shape
    (None, 2)
    """

    def __init__(self, data, *, validation_data=None, validation_split=0.2,
                 padding_value=None, class_names=None, max_tokens=20000,
                 max_length=256, embedding_dim=64, optimizer="adamw",
                 schedule="warmup_cosine", warmup_fraction=0.1,
                 label_smoothing=0.1, weight_decay=0.01, batch_size=64,
                 early_stopping=True, patience=None, seed=0, name=None,
                 tunable=True):
        super().__init__(name=name, tunable=tunable)
        _checks.check_training_args(
            epochs=1, batch_size=batch_size, learning_rate=None,
            weight_decay=weight_decay, label_smoothing=label_smoothing,
            schedule=schedule, warmup_fraction=warmup_fraction,
            steps_per_execution="auto", verbose=0)
        check_model_args("lstm", True, 1, 1, 0.0, 0.0, max_tokens,
                          max_length, embedding_dim)
        check_choice("early_stopping", early_stopping, (True, False))
        check_number("patience", patience, low=0, integer=True,
                     allow_none=True)
        from recipes import optimizers

        optimizers.get_info(optimizer)
        if validation_data is None and validation_split == 0:
            raise ValueError(
                "Argument `validation_split` must leave validation data for "
                "the tuner's objective when `validation_data` is None. "
                "Received: validation_split=0"
            )
        self.data = load_sequence_data(
            data, validation_data=validation_data,
            validation_split=validation_split, padding_value=padding_value,
            class_names=class_names, seed=seed)
        self.vocabulary = None
        if self.data.kind == "text":
            self.vocabulary = _adapted_vectorizer(
                self.data.train, max_tokens, max_length).get_vocabulary()
        self.options = dict(
            max_tokens=max_tokens, max_length=max_length,
            embedding_dim=embedding_dim, optimizer=optimizer,
            schedule=schedule, warmup_fraction=warmup_fraction,
            label_smoothing=label_smoothing, weight_decay=weight_decay,
            early_stopping=early_stopping, patience=patience)
        pipeline = dict(num_classes=self.data.num_classes,
                        batch_size=batch_size, padding_value=padding_value,
                        cache=self.data.source == "dataset")
        self.train = make_sequence_pipeline(
            self.data.train, training=True,
            num_examples=self.data.num_train, seed=seed, **pipeline)
        self.validation = make_sequence_pipeline(
            self.data.validation, training=False,
            num_examples=self.data.num_validation, **pipeline)
        self.batch_size = batch_size
        self.steps = math.ceil(self.data.num_train / batch_size)
        self.default_learning_rate = _optimization.default_learning_rate(
            optimizer, batch_size)

    def build(self, hp):
        """A compiled classifier for the hyperparameters `hp`."""
        options = self.options
        # Each hyperparameter's default is the recipe's.
        recipe = SequenceClassifierConfig
        vectorizer = None
        if self.vocabulary is not None:
            vectorizer = keras.layers.TextVectorization(
                max_tokens=options["max_tokens"],
                output_sequence_length=options["max_length"],
                vocabulary=self.vocabulary, name="vectorizer")
        model = build_sequence_classifier(
            num_classes=self.data.num_classes,
            num_features=self.data.num_features, vectorizer=vectorizer,
            cell=hp.Choice("cell", ["lstm", "gru"], default=recipe.cell),
            bidirectional=hp.Boolean("bidirectional",
                                     default=recipe.bidirectional),
            units=hp.Choice("units", [32, 64, 128], default=recipe.units),
            layers=hp.Int("layers", 1, 2, default=recipe.layers),
            dropout=hp.Float("dropout", 0.0, 0.5, step=0.1,
                             default=recipe.dropout),
            padding_value=self.data.padding_value,
            embedding_dim=options["embedding_dim"])
        self._compile(hp, model, epochs=1)
        return model

    def _phase(self, hp, epochs):
        """The recipe's single training phase of `epochs` for `hp`."""
        options = self.options
        peak = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log",
                        default=self.default_learning_rate)
        clipnorm = hp.Choice("clipnorm", [0.5, 1.0, 5.0],
                             default=SequenceClassifierConfig.clipnorm)
        return _phases.Phase(1, epochs, lambda s: make_clipped_optimizer(
            options["optimizer"], s(peak), options["weight_decay"],
            clipnorm))

    def _training(self, epochs, callbacks=(), verbose=0):
        """The `Training` of one trial of `epochs`: the recipe's settings,
        no run directory, the tuner's `callbacks`."""
        options = self.options
        return _phases.Training(
            train=self.train, val=self.validation,
            loss=keras.losses.CategoricalCrossentropy(
                label_smoothing=options["label_smoothing"]),
            steps_per_epoch=self.steps,
            steps_per_execution=_runtime.steps_per_execution_for(
                "auto", self.steps),
            # The tuner's `distribution_strategy`, if any, is in scope.
            runtime=_runtime.Runtime(tf.distribute.get_strategy(),
                                     keras.mixed_precision.global_policy()
                                     .name, 1, self.batch_size),
            out=_run_dir.OutputDir(None), verbose=verbose,
            early_stopping=options["early_stopping"],
            patience=_phases.resolve_patience(options["patience"], epochs),
            schedule=options["schedule"],
            warmup_fraction=options["warmup_fraction"],
            callbacks=tuple(callbacks or ()))

    def _compile(self, hp, model, epochs):
        """Compile `model` as the recipe's single phase of `epochs`."""
        training = self._training(epochs)
        _phases.compile_phase(
            model, self._phase(hp, epochs), loss=training.loss,
            steps_per_epoch=training.steps_per_epoch,
            steps_per_execution=training.steps_per_execution,
            schedule=training.schedule,
            warmup_fraction=training.warmup_fraction)

    def fit(self, hp, model, *args, epochs=1, callbacks=None, verbose=0,
            **kwargs):
        """Train `model` on the HyperModel's data for one trial.

        Trains like `fit_sequence_classifier`, through the recipe's phase
        mechanism (see the class docstring).

        Args:
            hp: The trial's `HyperParameters`.
            model: The model `build(hp)` returned.
            *args: Must be empty (the data is the HyperModel's).
            epochs: Epochs of the trial; the schedule spans them. Defaults
                to `1`.
            callbacks: The tuner's callbacks, added to the recipe's.
                Defaults to `None`.
            verbose: Verbosity. Defaults to `0`.
            **kwargs: `initial_epoch` (Hyperband): a promoted trial trains
                `epochs - initial_epoch` epochs from its parent's weights.
                No other keyword is taken.

        Returns:
            A `keras.callbacks.History` of every epoch trained (Keras Tuner
            scores the trial by its best epoch).

        Raises:
            TypeError: For positional data or another keyword.
            keras_tuner.errors.FailedTrialError: If training diverged and
                the learning-rate cuts did not help.
        """
        if args:
            raise TypeError(
                "SequenceClassifierHyperModel trains on the data given to "
                "its constructor; pass no data to `search`. Received: "
                f"{len(args)} positional arguments"
            )
        initial_epoch = kwargs.pop("initial_epoch", 0) or 0
        if kwargs:
            raise TypeError(
                "SequenceClassifierHyperModel.fit takes `epochs`, "
                "`callbacks`, `verbose` and `initial_epoch` from `search`. "
                f"Received: {sorted(kwargs)}"
            )
        if initial_epoch and "tuner/trial_id" in hp.values:
            epochs = max(1, epochs - initial_epoch)
        try:
            merged = _phases.run_phases(
                model, [self._phase(hp, epochs)],
                self._training(epochs, callbacks, verbose))
        except DivergenceError as e:
            raise keras_tuner.errors.FailedTrialError(
                f"Training diverged: {e}") from e
        history = keras.callbacks.History()
        history.set_model(model)
        history.history = merged
        history.epoch = list(range(len(merged.get("loss", []))))
        return history

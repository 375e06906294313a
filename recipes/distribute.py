"""Distribution strategies, precision policies and batch/LR scaling.

One place decides where a recipe trains: `get_strategy` picks a
`tf.distribute.Strategy` for the hardware at hand (TPU, several GPUs,
several workers, or the default single-device strategy), `resolve_precision`
picks the mixed-precision policy that actually pays off on it, and
`global_batch_size` / `scale_learning_rate` turn a per-replica batch and a
reference learning rate into the numbers the optimizer sees.
"""

import glob
import json
import logging
import math
import os

import keras
import tensorflow as tf

from callbacks._internal import check_choice, check_number

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "cpu", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_RULES = ("linear", "sqrt")

# Volta (7.0) is the first generation with float16 tensor cores; on older
# GPUs mixed_float16 adds casts without the matmul speed-up.
_MIN_FLOAT16_COMPUTE_CAPABILITY = (7, 0)


def _tf_config_workers():
    """Number of workers listed in `TF_CONFIG` (0 when unset or unreadable)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError):
        return 0
    return len(cluster.get("worker", ())) + len(cluster.get("chief", ()))


def _tpu_hint():
    """Cheap evidence of a TPU, so "auto" never probes a metadata server."""
    env = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")
    return any(os.environ.get(name) for name in env) or bool(
        glob.glob("/dev/accel*")
    )


def _tpu_strategy():
    name = os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
    if not name and glob.glob("/dev/accel*"):
        name = "local"
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
    if name != "local":
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _mirrored_strategy():
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _describe(strategy):
    return (
        f"{type(strategy).__name__} with "
        f"{strategy.num_replicas_in_sync} replica(s)"
    )


def get_strategy(strategy="auto"):
    """Return the `tf.distribute.Strategy` a recipe should train under.

    With `"auto"` the choice follows the hardware, first match wins:

    1. a TPU (`TPU_NAME`/`COLAB_TPU_ADDR`/`TPU_ACCELERATOR_TYPE` set, or a
       `/dev/accel*` device of a TPU VM) -> `TPUStrategy` through
       `TPUClusterResolver`;
    2. `TF_CONFIG` listing several workers -> `MultiWorkerMirroredStrategy`;
    3. more than one GPU -> `MirroredStrategy` over all GPUs;
    4. otherwise the default strategy (one device, no overhead).

    Several logical CPU devices are never mirrored automatically (on CPU the
    all-reduce costs more than it saves); ask for `"mirrored"` to do it.
    The choice is logged at INFO level on the `recipes.distribute` logger.

    Args:
        strategy: `"auto"`, `"cpu"` (one CPU device even when GPUs exist),
            `"mirrored"` (all GPUs, else all logical CPU devices),
            `"multi_worker"` (`MultiWorkerMirroredStrategy` configured from
            `TF_CONFIG`), `"tpu"`, or a `tf.distribute.Strategy` instance,
            returned unchanged. Defaults to `"auto"`.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        TypeError: If `strategy` is neither a string nor a strategy.
        ValueError: If `strategy` is an unknown name, or `"tpu"` is asked
            and no TPU can be reached.

    Example:

    >>> strategy = get_strategy("auto")
    >>> with strategy.scope():
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    """
    if isinstance(strategy, tf.distribute.Strategy):
        chosen = strategy
    elif not isinstance(strategy, str):
        raise TypeError(
            "Argument `strategy` must be one of "
            f"{list(STRATEGIES)} or a tf.distribute.Strategy. "
            f"Received: strategy={strategy!r}"
        )
    else:
        check_choice("strategy", strategy, STRATEGIES)
        chosen = _strategy_by_name(strategy)
    logger.info("Distribution strategy: %s.", _describe(chosen))
    return chosen


def _strategy_by_name(name):
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if name == "mirrored":
        return _mirrored_strategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            return _tpu_strategy()
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ValueError(
                "Argument `strategy` asks for a TPU but none could be "
                f"reached ({error}). Received: strategy='tpu'"
            ) from error
    if _tpu_hint():
        try:
            return _tpu_strategy()
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            logger.warning("A TPU was hinted but not reachable: %s", error)
    if _tf_config_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return _mirrored_strategy()
    return tf.distribute.get_strategy()


def _current_or(strategy):
    """`strategy` checked, or the current strategy when `None`."""
    if strategy is None:
        return tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            "Argument `strategy` must be a tf.distribute.Strategy or None. "
            f"Received: strategy={strategy!r}"
        )
    return strategy


def _strategy_devices(strategy):
    """Device kinds a strategy computes on: a set of "CPU"/"GPU"/"TPU"."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return {"TPU"}
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:
        # The default strategy places ops wherever TF would: on a GPU if any.
        return {"GPU"} if tf.config.list_physical_devices("GPU") else {"CPU"}
    kinds = {tf.DeviceSpec.from_string(d).device_type for d in devices}
    return {kind.upper() for kind in kinds if kind}


def _gpus_support_float16():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability", (0, 0))
        if tuple(capability) < _MIN_FLOAT16_COMPUTE_CAPABILITY:
            return False
    return True


def resolve_precision(mixed_precision="auto", strategy=None):
    """Resolve a mixed-precision setting to a Keras dtype policy name.

    `"auto"` picks the policy that speeds training up on the hardware the
    strategy computes on: `"mixed_bfloat16"` on TPUs (their native matmul
    type), `"mixed_float16"` on GPUs of compute capability 7.0 or newer
    (tensor cores), and `"float32"` on CPUs, where `mixed_float16` was
    measured about 4x slower. `mixed_bfloat16` can pay off on CPUs with
    AVX512-BF16, but not everywhere, so it is used on CPU only when asked.

    Args:
        mixed_precision: `"auto"`, `"float32"`, `"mixed_float16"`,
            `"mixed_bfloat16"`, or `None` to keep the current global policy.
            Explicit names are returned unchanged (a warning is logged for
            `mixed_float16` without a GPU). Defaults to `"auto"`.
        strategy: The `tf.distribute.Strategy` training will run under;
            `None` means the current one. Defaults to `None`.

    Returns:
        A policy name for `keras.mixed_precision.set_global_policy`.

    Raises:
        ValueError: If `mixed_precision` is not one of the names above.
        TypeError: If `strategy` is not a `tf.distribute.Strategy`.

    Example:

    >>> resolve_precision("auto", tf.distribute.OneDeviceStrategy("/cpu:0"))
    'float32'
    """
    if mixed_precision is None:
        return keras.mixed_precision.global_policy().name
    if not isinstance(mixed_precision, str):
        raise ValueError(
            f"Argument `mixed_precision` must be one of {list(PRECISIONS)} "
            f"or None. Received: mixed_precision={mixed_precision!r}"
        )
    check_choice("mixed_precision", mixed_precision, PRECISIONS)
    strategy = _current_or(strategy)
    kinds = _strategy_devices(strategy)
    if mixed_precision == "auto":
        if "TPU" in kinds:
            policy = "mixed_bfloat16"
        elif "GPU" in kinds and _gpus_support_float16():
            policy = "mixed_float16"
        else:
            policy = "float32"
        logger.info("Precision policy: %s (devices: %s).", policy, kinds)
        return policy
    if mixed_precision == "mixed_float16" and "GPU" not in kinds:
        logger.warning(
            "mixed_float16 without a GPU is slower than float32 (about 4x "
            "on CPU)."
        )
    return mixed_precision


def global_batch_size(per_replica, strategy=None):
    """Global batch size: the per-replica batch times the replica count.

    Args:
        per_replica: Examples each replica processes per step.
        strategy: The `tf.distribute.Strategy`; `None` means the current
            one. Defaults to `None`.

    Returns:
        The `int` batch size to give `tf.data`/`fit` under the strategy.

    Raises:
        TypeError: If `per_replica` is not an integer.
        ValueError: If `per_replica` is < 1.

    Example:

    >>> global_batch_size(32, tf.distribute.get_strategy())
    32
    """
    per_replica = check_number("per_replica", per_replica, low=1, integer=True)
    strategy = _current_or(strategy)
    return per_replica * strategy.num_replicas_in_sync


def scale_learning_rate(learning_rate, global_batch_size, base_batch_size,
                        rule="linear"):
    """Scale a learning rate tuned at one batch size to another.

    `"linear"` multiplies by `global_batch_size / base_batch_size` (Goyal et
    al., for SGD with warmup); `"sqrt"` by its square root (Krizhevsky;
    Hoffer et al.; usually the better fit for Adam-type optimizers); `None`
    leaves the rate unchanged.

    Args:
        learning_rate: The learning rate tuned at `base_batch_size`.
        global_batch_size: The batch size training will use.
        base_batch_size: The batch size `learning_rate` was tuned for.
        rule: `"linear"`, `"sqrt"` or `None`. Defaults to `"linear"`.

    Returns:
        The scaled learning rate (`float`).

    Raises:
        TypeError: If a number argument is not a number.
        ValueError: If a number is out of range or `rule` is unknown.

    Example:

    >>> scale_learning_rate(0.1, 1024, 256)
    0.4

    References:
        - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677)
        - [Hoffer et al., 2017](https://arxiv.org/abs/1705.08741)
    """
    learning_rate = check_number(
        "learning_rate", learning_rate, low=0, low_inclusive=False
    )
    global_batch_size = check_number(
        "global_batch_size", global_batch_size, low=1, integer=True
    )
    base_batch_size = check_number(
        "base_batch_size", base_batch_size, low=1, integer=True
    )
    if rule is None:
        return float(learning_rate)
    check_choice("rule", rule, LR_RULES)
    ratio = global_batch_size / base_batch_size
    if rule == "sqrt":
        ratio = math.sqrt(ratio)
    return float(learning_rate * ratio)


def is_multi_worker(strategy=None):
    """Whether `strategy` all-reduces across several worker processes.

    Args:
        strategy: A `tf.distribute.Strategy`, or `None` for the current one.
            Defaults to `None`.

    Returns:
        `True` for a `MultiWorkerMirroredStrategy` whose cluster has more
        than one task (chief and workers), else `False`.

    Example:

    >>> is_multi_worker(get_strategy("cpu"))
    False
    """
    strategy = _current_or(strategy)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(spec.get(kind, [])) for kind in ("chief", "worker")) > 1


def prepare_model(model, strategy=None):
    """The model to compile and fit under `strategy`, working around Keras.

    Under a multi-worker `MultiWorkerMirroredStrategy`, Keras 3.15's `fit`
    fails twice on a model created in the strategy's scope: its eager
    symbolic build reduces a whole `PerReplica` batch structure
    (keras-team/keras#20585), and it all-reduces step logs with
    `strategy.reduce("MEAN", value, axis=0)`, which rejects scalars. This
    returns a functional model over the same layers and variables (created
    in the scope) whose container is created outside it, so Keras defers
    the build to the traced step, and whose train/test steps return rank-1
    logs. Under any other strategy the model is returned unchanged.

    Call it outside `strategy.scope()`, after building the model inside it.

    Args:
        model: A functional `keras.Model` built under `strategy`.
        strategy: The strategy, or `None` for the current one. Defaults to
            `None`.

    Returns:
        A `keras.Model` sharing `model`'s layers and variables.

    Raises:
        ValueError: If called inside a strategy scope for a multi-worker
            strategy, or `model` is not functional.
    """
    if not is_multi_worker(strategy):
        return model
    if tf.distribute.has_strategy():
        raise ValueError(
            "`prepare_model` must be called outside `strategy.scope()`. "
            f"Received: current strategy {tf.distribute.get_strategy()!r}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "Argument `model` must be a functional keras.Model. Received: "
            f"model={model!r}"
        ) from error
    prepared = keras.Model(inputs, outputs, name=model.name)
    prepared.train_step = _rank_one_logs(prepared.train_step)
    prepared.test_step = _rank_one_logs(prepared.test_step)
    return prepared


def _rank_one_logs(step):
    def wrapped(data):
        logs = step(data)
        return {key: keras.ops.reshape(value, (1,))
                for key, value in logs.items()}

    return wrapped

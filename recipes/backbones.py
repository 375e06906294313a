"""Backbones for the image recipes: a registry over `keras.applications`.

Each entry knows how to build its network without its classification top,
the preprocessing its ImageNet weights expect, its native input size and
the layer where its top blocks (the ones fine-tuning unfreezes) start. The
recipes, the CLI and the tuner all read this one registry; adding a backbone
is one `register_backbone` call.

Besides the registry names, a backbone can be `"small_cnn"` (a small CNN
trained from scratch, fast on CPU for small images), any `keras.Model`, the
path of a `.keras` file (loaded with `safe_mode=True`), or a KerasHub preset
written `"hub:<preset>"`: a preset name such as `"hub:resnet_50_imagenet"`
(downloaded on first use, then cached by KerasHub), a Kaggle or Hugging Face
handle (`"hub:kaggle://..."`, `"hub:hf://..."`) or the directory of a preset
saved with `save_to_preset` (`"hub:./my_preset"`). KerasHub presets need the
`hub` extra (`pip install "keras-recipes[hub]"`).
"""

import dataclasses
import difflib
import os
import zipfile

import keras
import numpy as np

from callbacks._internal import check_choice
from recipes.loading import import_keras_hub, import_model_packages

_PREPROCESSING = ("unit", "tf", "torch", "caffe", "raw255", "none")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
HUB_PREFIX = "hub:"


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """What the recipes need to know about a backbone.

    Attributes:
        name: Registry name (or the model's name for user models).
        builder: Callable `(input_shape, weights) -> keras.Model` returning
            the network without its top (a 4D feature map output).
        native_size: `(height, width)` the pretrained weights were trained
            at, or `None` (any size).
        preprocessing: What the network expects, given images in [0, 1]:
            `"unit"` (as is), `"tf"` ([-1, 1]), `"torch"` (ImageNet mean and
            std), `"caffe"` (BGR, 0-255 minus the ImageNet mean), `"raw255"`
            ([0, 255]; the network rescales itself) or `"none"` (a user
            model: images are passed in their original range).
        fine_tune_from: Name of the first layer of the top blocks, or `None`
            (the top third of the layers with weights).
        pretrained_weights: Weights names the builder accepts besides `None`
            and a file path (e.g. `("imagenet",)`).
        channels: Number of input channels the network needs.
    """

    name: str
    builder: object
    native_size: tuple | None
    preprocessing: str
    fine_tune_from: str | None
    pretrained_weights: tuple = ("imagenet",)
    channels: int | None = 3


_REGISTRY = {}


def register_backbone(name, builder, *, native_size, preprocessing,
                      fine_tune_from, pretrained_weights=("imagenet",),
                      channels=3):
    """Add a backbone to the registry.

    Args:
        name: Registry name (lower case, as users type it).
        builder: Callable `(input_shape, weights) -> keras.Model` without
            the classification top.
        native_size: `(height, width)` of the pretrained weights, or `None`.
        preprocessing: One of `"unit"`, `"tf"`, `"torch"`, `"caffe"`,
            `"raw255"`, `"none"` (see `BackboneInfo`).
        fine_tune_from: First layer of the top blocks, or `None`.
        pretrained_weights: Named weights the builder accepts. Defaults to
            `("imagenet",)`.
        channels: Input channels the network needs; `None` for any.
            Defaults to `3`.

    Returns:
        The registered `BackboneInfo`.

    Raises:
        ValueError: If `name` is taken or `preprocessing` is unknown.

    Example:

    >>> info = register_backbone(
    ...     "mobilenet_v2_035",
    ...     lambda shape, weights: keras.applications.MobileNetV2(
    ...         input_shape=shape, alpha=0.35, include_top=False,
    ...         weights=weights),
    ...     native_size=(224, 224), preprocessing="tf",
    ...     fine_tune_from="block_13_expand")
    >>> "mobilenet_v2_035" in list_backbones()
    True
    >>> _ = _REGISTRY.pop("mobilenet_v2_035")
    """
    if name in _REGISTRY:
        raise ValueError(
            f"Argument `name` must be a new backbone name. Received: "
            f"name={name!r} (already registered)"
        )
    check_choice("preprocessing", preprocessing, _PREPROCESSING)
    info = BackboneInfo(name, builder, native_size, preprocessing,
                        fine_tune_from, tuple(pretrained_weights), channels)
    _REGISTRY[name] = info
    return info


def list_backbones():
    """Names of the registered backbones, sorted.

    Returns:
        A list of strings.

    Example:

    >>> "small_cnn" in list_backbones()
    True
    """
    return sorted(_REGISTRY)


def get_backbone_info(name):
    """The `BackboneInfo` of a registered backbone.

    Args:
        name: Registry name.

    Returns:
        A `BackboneInfo`.

    Raises:
        ValueError: If `name` is not registered (close matches are listed).

    Example:

    >>> get_backbone_info("mobilenet_v2").native_size
    (224, 224)

    A `"hub:<preset>"` name describes a KerasHub preset (see
    `hub_backbone_info`).
    """
    if _hub_preset(name) is not None:
        return hub_backbone_info(name)
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
        hint = f" Did you mean {close}?" if close else ""
        names = ", ".join(list_backbones())
        if isinstance(name, str | os.PathLike) and os.path.isdir(name):
            hint += (f" For a KerasHub preset directory, write "
                     f"backbone={HUB_PREFIX + os.fspath(name)!r}.")
        raise ValueError(
            f"Argument `backbone` must be a registered name ({names}), "
            f"'hub:<KerasHub preset>', a keras.Model or a .keras file.{hint} "
            f"Received: backbone={name!r}"
        )
    return _REGISTRY[name]


def _hub_preset(backbone):
    """The preset of a `"hub:<preset>"` backbone, else `None`."""
    if isinstance(backbone, str) and backbone.startswith(HUB_PREFIX):
        return backbone[len(HUB_PREFIX):]
    return None


def hub_backbone_info(backbone):
    """Describe a KerasHub preset as a backbone of the image recipes.

    Reads the preset's image converter (`image_converter.json`, which every
    KerasHub image classifier preset holds): its `image_size` becomes the
    native size, and its `scale` and `offset` (applied by KerasHub to pixels
    in [0, 255]) become a `keras.layers.Rescaling` inside the built
    backbone, so the backbone takes images in [0, 1] like the others
    (`preprocessing="unit"`). The KerasHub network goes in as a plain
    functional model of its layers, so a saved model keeps which layers
    fine-tuning unfroze and needs `keras_hub` only for the architectures
    built from KerasHub's own layers. Resizing is the recipe's own (bilinear,
    without the converter's aspect-ratio crop). Fine-tuning unfreezes the
    top third of the layers with weights (`fine_tune_from=None`); the
    preset's weights are called `"preset"`.

    A preset name is downloaded (Kaggle or Hugging Face) and cached by
    KerasHub on first use; a preset directory is read in place.

    Args:
        backbone: `"hub:<preset>"`, where `<preset>` is anything
            `keras_hub.models.Backbone.from_preset` takes: a preset name,
            a `kaggle://` or `hf://` handle, or a local preset directory.

    Returns:
        A `BackboneInfo` named `backbone`.

    Raises:
        ImportError: If `keras-hub` is not installed (the `hub` extra).
        ValueError: If the preset cannot be found or downloaded, or holds
            no image converter.

    Example:

    >>> import tempfile
    >>> import keras_hub
    >>> preset = tempfile.mkdtemp()
    >>> keras_hub.layers.ImageConverter(
    ...     image_size=(32, 32), scale=1 / 255).save_to_preset(preset)
    >>> keras_hub.models.ResNetBackbone(
    ...     input_conv_filters=[64], input_conv_kernel_sizes=[3],
    ...     stackwise_num_filters=[64], stackwise_num_blocks=[1],
    ...     stackwise_num_strides=[1], block_type="basic_block",
    ... ).save_to_preset(preset)
    >>> info = hub_backbone_info("hub:" + preset)
    >>> info.native_size, info.preprocessing
    ((32, 32), 'unit')
    >>> model, _, pretrained = build_backbone("hub:" + preset)
    >>> model.output.shape, pretrained
    ((None, 8, 8, 64), True)
    """
    preset = _hub_preset(backbone)
    if not preset:
        raise ValueError(
            "Argument `backbone` must name a KerasHub preset after 'hub:' "
            "(a preset name, a kaggle:// or hf:// handle, or a preset "
            f"directory). Received: backbone={backbone!r}"
        )
    keras_hub = import_keras_hub()
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError:
        raise ValueError(
            "Argument `backbone` must be a KerasHub image preset with an "
            "image converter (`image_converter.json`), which declares the "
            f"input scaling its weights expect; {preset!r} has none (a "
            "backbone saved alone? Save the classifier, or its "
            "`ImageConverter`, to the same directory with "
            f"`save_to_preset`). Received: backbone={backbone!r}"
        ) from None
    except Exception as error:  # noqa: BLE001 - any loader failure: one error
        raise ValueError(_hub_load_error(backbone, preset, error)) from None
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    size = converter.image_size
    return BackboneInfo(
        backbone, _HubBuilder(preset, scale, offset),
        tuple(size) if size is not None else None, "unit", None,
        ("preset",), 3)


def _hub_load_error(backbone, preset, error):
    # The loaders' errors come from deep inside (requests, kagglehub,
    # huggingface_hub) and span lines: keep their first line, not the
    # traceback.
    detail = str(error).strip().splitlines()
    detail = detail[0] if detail else ""
    where = ("the directory exists but is not a readable KerasHub preset"
             if os.path.isdir(preset) else
             "a preset name is downloaded from Kaggle or Hugging Face on "
             "first use, which needs network access; offline, pass the "
             "directory of a preset saved with `save_to_preset`, as "
             "backbone='hub:/path/to/preset'")
    return (
        f"Argument `backbone`: KerasHub preset {preset!r} could not be "
        f"loaded ({type(error).__name__}: {detail}); {where}. "
        f"Received: backbone={backbone!r}"
    )


class _HubBuilder:
    """Builds a KerasHub preset's backbone behind its input scaling."""

    def __init__(self, preset, scale, offset):
        self.preset, self.scale, self.offset = preset, scale, offset

    def __call__(self, input_shape, weights):
        keras_hub = import_keras_hub()
        try:
            network = keras_hub.models.Backbone.from_preset(
                self.preset, load_weights=weights is not None)
        except Exception as error:  # noqa: BLE001 - one error, as above
            raise ValueError(_hub_load_error(
                HUB_PREFIX + self.preset, self.preset, error)) from None
        shapes = [tuple(t.shape) for t in network.inputs]
        if len(shapes) != 1 or len(shapes[0]) != 4:
            raise ValueError(
                "Argument `backbone` must be a KerasHub image backbone "
                "taking one batch of images; this preset's network takes "
                f"inputs of shapes {shapes}. Received: "
                f"backbone={HUB_PREFIX + self.preset!r}"
            )
        fixed = shapes[0][1:3]
        if None not in fixed and tuple(fixed) != tuple(input_shape[:2]):
            raise ValueError(
                f"Argument `image_size` must be {tuple(fixed)} for backbone="
                f"{HUB_PREFIX + self.preset!r}, whose network takes only "
                f"that size. Received: image_size={tuple(input_shape[:2])}"
            )
        # The converter's scaling applies to pixels in [0, 255]; ours
        # arrive in [0, 1], hence the factor 255 on the scale only.
        scale = (255.0 * np.asarray(self.scale, "float64")).tolist()
        inputs = keras.Input((*input_shape[:2], shapes[0][3]), name="pixels")
        x = keras.layers.Rescaling(scale, offset=self.offset,
                                   name="preprocess_hub")(inputs)
        # The network's graph as a plain functional model: saved, a
        # KerasHub `Backbone` is rebuilt from its constructor arguments,
        # which loses the per-layer `trainable` flags fine-tuning set (a
        # reloaded model would train every layer, and its optimizer state
        # would not match); a functional model saves each layer's config.
        graph = keras.Model(network.inputs[0], network.outputs,
                            name=network.name)
        outputs = graph(x)
        if len(outputs) != 1 or len(outputs[0].shape) != 4:
            raise ValueError(
                "Argument `backbone` must be a KerasHub backbone with a 4D "
                "feature map output (a convolutional network such as "
                "ResNet, EfficientNet or MobileNet); this one outputs shapes "
                f"{[tuple(t.shape) for t in outputs]}. Received: "
                f"backbone={HUB_PREFIX + self.preset!r}"
            )
        return keras.Model(inputs, outputs[0], name=f"hub_{network.name}")


def small_cnn(input_shape, width=16, units=128, pooling="max",
              name="small_cnn"):
    """A small convolutional network for small images, trained from scratch.

    Three stages of 3x3 convolution (`width`, `2 * width`, `4 * width`
    filters), ReLU and 2x2 pooling, with BatchNormalization in the last
    stage only, then a `units`-wide dense layer. Trained by the recipe at
    its defaults it ends at least as accurate as the keras.io "Simple
    MNIST convnet" (30 epochs) on all four real data sets of
    `benchmarks/suite.py` (MNIST-5k, 8x8 digits, texture and scene
    patches): in the median of 3 seeds it matched or beat the textbook's
    best epoch on each set and ended 0-16 points of validation accuracy
    above the textbook's final one, over two runs (see
    `benchmarks/RESULTS.md`).

    Why max pooling: by the recipe on those four sets (medians of seeds
    0-2, `benchmarks/bench_small_cnn.py`), max pooling reached the
    textbook's final accuracy in 3-5 epochs on the 8x8 digits, textures
    and scenes against 5-10 with average pooling, and in 4 epochs against
    3 on MNIST-5k; it ended as accurate on the digits and textures, 0.2
    points lower on MNIST-5k and 6 points higher on scenes (86.9% against
    81.0%). With two more seeds, the medians of five agreed on epochs and
    scenes but put 8x8 digits 0.34 points (one validation image) lower.
    An earlier reason for average pooling, a slower CPU gradient of max
    pooling, no longer holds: whole epochs took the same time with either
    (0.25-1.17 s against 0.26-1.16 s over the four sets, 2-core CPU), as
    did a fixed-input training step.

    Why BatchNormalization sits in the last stage only: Keras computes it
    with separate reduction and element-wise ops, and on a CPU its passes
    over the two large early feature maps cost about as much as the
    convolutions, plus about a second of graph tracing. Measured on
    MNIST-5k only, in one interleaved run (5 seeds, recipe defaults, max
    pooling): BN in every stage took 3.4 s per epoch and a median 15.4 s
    to 97.5% validation accuracy; BN in the last stage (7x7 maps, where
    it is cheap) 2.2 s and 11.1 s; no BN at all 2.3 s and 9.4 s (in an
    earlier run 10.3 s against 9.4 s for the last-stage variant: those two
    differ by less than the run-to-run noise).
    Cheaper variants (two unpadded stages of 16 and 32 filters; three
    stages of 8, 16 and 32) are faster per epoch but need more epochs and
    missed 98% more often.
    Its BatchNormalization uses momentum 0.9: with the 0.99 default the
    moving statistics lag far behind the weights over the few hundred
    steps of a short CPU run, and evaluation-mode accuracy collapses.

    Args:
        input_shape: `(height, width, channels)`.
        width: Filters of the first stage. Defaults to `16`.
        units: Width of the dense feature layer. Defaults to `128`.
        pooling: `"max"` or `"average"` 2x2 pooling after each stage.
            Defaults to `"max"`.
        name: Model name. Defaults to `"small_cnn"`.

    Returns:
        A functional `keras.Model` with a 2D feature output.

    Raises:
        ValueError: If `pooling` is not `"average"` or `"max"`.

    Example:

    >>> small_cnn((28, 28, 1)).output.shape
    (None, 128)

    References:
        - [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167)
    """
    check_choice("pooling", pooling, ("average", "max"))
    pool = {"average": keras.layers.AveragePooling2D,
            "max": keras.layers.MaxPooling2D}[pooling]
    inputs = keras.Input(input_shape)
    x = inputs
    for stage, filters in enumerate((width, 2 * width, 4 * width), start=1):
        last = stage == 3
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not last,
                                name=f"conv{stage}")(x)
        if last:
            x = keras.layers.BatchNormalization(momentum=0.9,
                                                name=f"bn{stage}")(x)
        x = keras.layers.ReLU(name=f"relu{stage}")(x)
        x = pool(2, name=f"pool{stage}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(units, activation="relu", name="features")(x)
    return keras.Model(inputs, x, name=name)


def _application(cls_name, **extra):
    def build(input_shape, weights):
        cls = getattr(keras.applications, cls_name)
        return cls(include_top=False, weights=weights,
                   input_shape=input_shape, **extra)

    build.__name__ = f"build_{cls_name}"
    return build


register_backbone(
    "small_cnn", lambda shape, weights: small_cnn(shape), native_size=None,
    preprocessing="unit", fine_tune_from="conv3", pretrained_weights=(),
    channels=None)
for _name, _cls, _size, _prep, _start in (
    ("mobilenet_v2", "MobileNetV2", 224, "tf", "block_13_expand"),
    ("mobilenet_v3_small", "MobileNetV3Small", 224, "raw255",
     "expanded_conv_9_expand"),
    ("mobilenet_v3_large", "MobileNetV3Large", 224, "raw255",
     "expanded_conv_12_expand"),
    ("efficientnet_b0", "EfficientNetB0", 224, "raw255",
     "block6a_expand_conv"),
    ("efficientnetv2_b0", "EfficientNetV2B0", 224, "raw255",
     "block6a_expand_conv"),
    ("resnet50", "ResNet50", 224, "caffe", "conv5_block1_1_conv"),
    ("resnet50_v2", "ResNet50V2", 224, "tf", "conv5_block1_preact_bn"),
    ("convnext_tiny", "ConvNeXtTiny", 224, "raw255",
     "convnext_tiny_stage_3_block_0_depthwise_conv"),
    ("densenet121", "DenseNet121", 224, "torch", "conv5_block1_0_bn"),
    ("xception", "Xception", 299, "tf", "block14_sepconv1"),
    ("inception_v3", "InceptionV3", 299, "tf", "mixed9"),
):
    register_backbone(_name, _application(_cls), native_size=(_size, _size),
                      preprocessing=_prep, fine_tune_from=_start)


def _user_info(model):
    shape = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(shape) != 3:
        raise ValueError(
            "Argument `backbone` must be a model taking images of shape "
            "(height, width, channels). Received: a model with input shape "
            f"{shape}"
        )
    size = tuple(shape[:2]) if None not in shape[:2] else None
    return BackboneInfo(model.name, None, size, "none", None, (), shape[2])


def _features(model):
    """The model up to its features.

    A classifier loses its last layer and the Dropout layers just before
    it: a frozen backbone must compute the same features in training and
    inference, and the new head brings its own dropout. (Keras's
    `trainable=False` freezes weights but leaves Dropout active in
    training.)
    """
    if len(model.outputs) != 1:
        raise ValueError(
            "Argument `backbone` must be a model with one output. Received: "
            f"a model with {len(model.outputs)} outputs"
        )
    if len(model.outputs[0].shape) == 2 and len(model.layers) > 2:
        layers = model.layers
        features = layers[-1].input
        index = len(layers) - 2
        while (index > 0 and isinstance(layers[index], keras.layers.Dropout)
               and layers[index].output is features):
            features = layers[index].input
            index -= 1
        return keras.Model(model.inputs, features,
                           name=f"{model.name}_features")
    return model


def is_pretrained(backbone, weights="auto"):
    """Whether `build_backbone(backbone, weights)` counts as pretrained.

    Answers without building anything or downloading weights, so callers
    can refuse arguments (fine-tuning a backbone trained from scratch)
    before any work.

    Args:
        backbone: A registry name, `"hub:<preset>"`, a `keras.Model` or
            a `.keras` path.
        weights: As in `build_backbone`. Defaults to `"auto"`.

    Returns:
        `True` when the recipes would train the backbone in two phases
        (frozen, then fine-tuned), `False` when in one phase from scratch.

    Raises:
        ValueError: For an unknown registry name, weights a registry
            backbone does not have (nor an existing file), or `weights`
            other than `"auto"` or `None` for a user model.
        ImportError: For a `"hub:<preset>"` backbone without `keras-hub`.

    Example:

    >>> is_pretrained("small_cnn"), is_pretrained("mobilenet_v2")
    (False, True)
    """
    if isinstance(backbone, keras.Model) or (
            isinstance(backbone, str | os.PathLike)
            and os.fspath(backbone).endswith(".keras")):
        _check_user_weights(weights)
        return weights == "auto"
    builder_weights, file_weights = _registry_weights(
        get_backbone_info(backbone), weights)
    return builder_weights is not None or file_weights is not None


def build_backbone(backbone, weights="auto", input_shape=None):
    """Build a backbone network and describe it.

    Args:
        backbone: A registry name (`list_backbones()`), a KerasHub preset
            as `"hub:<preset>"` (see `hub_backbone_info`), a `keras.Model`,
            or the path of a `.keras` file. A user model whose output is 2D
            (a classifier) loses its last layer and the Dropout layers just
            before it: the output under them becomes the features.
        weights: `"imagenet"` (downloads), `"preset"` (a KerasHub preset's
            own weights), `None` (random initialization), the path of a
            weights file (`.weights.h5`) of the same architecture, or
            `"auto"` (`"imagenet"` for ImageNet backbones, `"preset"` for
            KerasHub presets, `None` for `"small_cnn"`). A user model
            keeps its weights either way: with `"auto"` they count as
            pretrained, with `None` as untrained (a new architecture: the
            recipes then train every layer in one phase, as for
            `"small_cnn"`). Defaults to `"auto"`.
        input_shape: `(height, width, channels)` of a registry backbone.
            Defaults to `None` (native size, 3 channels).

    Returns:
        `(model, info, pretrained)`: the network with a 4D (or, for user
        classifiers, 2D) output, its `BackboneInfo`, and whether its weights
        were learned before (then the recipes train in two phases).

    Raises:
        ValueError: For an unknown name, a missing `.keras` or weights file,
            weights a backbone does not have, or a KerasHub preset that
            cannot be loaded.
        ImportError: For a KerasHub preset (or a `.keras` file holding a
            KerasHub network) without `keras-hub` installed.

    Example:

    >>> model, info, pretrained = build_backbone(
    ...     "small_cnn", input_shape=(28, 28, 1))
    >>> model.output.shape, pretrained
    ((None, 128), False)
    """
    if isinstance(backbone, keras.Model):
        _check_user_weights(weights)
        return _features(backbone), _user_info(backbone), weights == "auto"
    if isinstance(backbone, str | os.PathLike) and os.fspath(
            backbone).endswith(".keras"):
        path = os.fspath(backbone)
        if not os.path.isfile(path):
            raise ValueError(
                f"Argument `backbone` must be an existing .keras file. "
                f"Received: backbone={path!r} (no such file)"
            )
        _check_user_weights(weights)
        if not zipfile.is_zipfile(path):
            raise ValueError(
                "Argument `backbone` must be a `.keras` file saved by "
                "Keras (a zip archive); this one is not a zip archive "
                "(truncated, or another format renamed). "
                f"Received: backbone={path!r}"
            )
        import_model_packages(path)
        try:
            model = keras.saving.load_model(path, safe_mode=True,
                                            compile=False)
        except Exception as error:  # noqa: BLE001 - any damage: one error
            raise ValueError(
                "Argument `backbone` must be a readable `.keras` model "
                f"file; loading it failed ({type(error).__name__}: "
                f"{error}). Received: backbone={path!r}"
            ) from error
        return _features(model), _user_info(model), weights == "auto"
    info = get_backbone_info(backbone)
    weights, file_weights = _registry_weights(info, weights)
    if input_shape is None:
        size = info.native_size or (224, 224)
        input_shape = (*size, info.channels or 3)
    try:
        model = info.builder(tuple(input_shape), weights)
    except ValueError as error:
        if "at least" not in str(error):
            raise
        # Keras applications refuse inputs their downsampling would
        # shrink to nothing ("Input size must be at least 32x32").
        raise ValueError(
            f"Argument `image_size` is too small for backbone="
            f"{info.name!r}: {error}. Received: image_size="
            f"{tuple(input_shape[:2])}"
        ) from error
    except Exception as error:
        if weights is None or "URL fetch failure" not in str(error):
            raise
        raise ValueError(
            f"Argument `weights`: the {weights} weights of backbone="
            f"{info.name!r} could not be downloaded ({error}). Pass "
            "`weights=None` to train it from scratch, or the path of a "
            "weights file of the same architecture (`.weights.h5`) "
            f"downloaded elsewhere. Received: weights={weights!r}"
        ) from error
    if file_weights is not None:
        model.load_weights(file_weights)
    return model, info, weights is not None or file_weights is not None


def _registry_weights(info, weights):
    """`(weights for the builder, weights file or None)`, checked."""
    if weights == "auto":
        weights = info.pretrained_weights[0] if info.pretrained_weights \
            else None
    if weights is None or weights in info.pretrained_weights:
        return weights, None
    if not (isinstance(weights, str | os.PathLike)
            and os.path.isfile(weights)):
        names = list(info.pretrained_weights) + [None]
        raise ValueError(
            f"Argument `weights` must be one of {names} or an existing "
            f"weights file for backbone={info.name!r}. Received: "
            f"weights={weights!r}"
        )
    return None, os.fspath(weights)


def _check_user_weights(weights):
    if weights not in ("auto", None):
        raise ValueError(
            "Argument `weights` must be 'auto' (pretrained) or None "
            "(untrained) when `backbone` is a model, which keeps its own "
            f"weights. Received: weights={weights!r}"
        )


def preprocessing_layers(mode):
    """Keras layers mapping images in [0, 1] to what a backbone expects.

    Args:
        mode: A `BackboneInfo.preprocessing` value.

    Returns:
        A list of layers (empty for `"unit"` and `"none"`).

    Example:

    >>> [type(l).__name__ for l in preprocessing_layers("tf")]
    ['Rescaling']
    """
    check_choice("preprocessing", mode, _PREPROCESSING)
    if mode == "tf":
        return [keras.layers.Rescaling(2.0, offset=-1.0,
                                       name="preprocess_tf")]
    if mode == "raw255":
        return [keras.layers.Rescaling(255.0, name="preprocess_raw255")]
    if mode == "torch":
        return [keras.layers.Normalization(
            mean=list(_IMAGENET_MEAN),
            variance=[s * s for s in _IMAGENET_STD],
            name="preprocess_torch")]
    if mode == "caffe":
        # RGB in [0, 1] -> BGR in [0, 255] minus the mean: one fixed 1x1
        # convolution (a standard layer, so the model reloads in safe mode).
        conv = keras.layers.Conv2D(3, 1, trainable=False,
                                   name="preprocess_caffe")
        conv.build((None, None, None, 3))
        kernel = np.zeros((1, 1, 3, 3), "float32")
        for out, src in enumerate((2, 1, 0)):
            kernel[0, 0, src, out] = 255.0
        conv.set_weights([kernel, -np.array(_CAFFE_MEAN_BGR, "float32")])
        return [conv]
    return []


def leaf_layers(model):
    """The layers of `model`, nested models expanded, inputs left out.

    A backbone loaded from a recipe's `.keras` file holds its network as a
    nested model; fine-tuning must see (and freeze) the layers inside.

    Example:

    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> outer = keras.Sequential([keras.Input((4,)), inner,
    ...                           keras.layers.Dense(1)])
    >>> [type(layer).__name__ for layer in leaf_layers(outer)]
    ['Dense', 'Dense']
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(leaf_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            found.append(layer)
    return found


def select_fine_tune_layers(model, info, fine_tune_layers="auto"):
    """The backbone layers fine-tuning unfreezes (BatchNorm excluded).

    Args:
        model: The backbone model.
        info: Its `BackboneInfo`.
        fine_tune_layers: `"auto"` (from `info.fine_tune_from`, or the top
            third of the layers with weights), `"all"`, an int `n` (the top
            `n` layers with weights; 0 for none) or a layer name (that
            layer and every layer after it). Defaults to `"auto"`.

    Returns:
        The list of layers to make trainable. BatchNormalization layers are
        never in it: they stay frozen, in inference mode, so their ImageNet
        statistics are not overwritten by small-batch estimates.

    Raises:
        ValueError: For a negative count or an unknown layer name.

    Example:

    >>> model, info, _ = build_backbone("small_cnn",
    ...                                 input_shape=(28, 28, 1))
    >>> [l.name for l in select_fine_tune_layers(model, info, 1)]
    ['features']
    """
    layers = leaf_layers(model)
    weighted = [layer for layer in layers if layer.weights]
    if fine_tune_layers == "auto":
        fine_tune_layers = info.fine_tune_from or max(1, len(weighted) // 3)
    if fine_tune_layers == "all":
        chosen = layers
    elif isinstance(fine_tune_layers, int) and not isinstance(
            fine_tune_layers, bool):
        if fine_tune_layers < 0:
            raise ValueError(
                "Argument `fine_tune_layers` must be >= 0. Received: "
                f"fine_tune_layers={fine_tune_layers}"
            )
        # More than there are: all of them (a negative start would wrap).
        chosen = weighted[max(0, len(weighted) - fine_tune_layers):] \
            if fine_tune_layers else []
    else:
        names = [layer.name for layer in layers]
        if fine_tune_layers not in names:
            close = difflib.get_close_matches(str(fine_tune_layers), names,
                                              n=3)
            raise ValueError(
                "Argument `fine_tune_layers` must be 'auto', 'all', a count "
                f"or a layer name of the backbone (close names: {close}). "
                f"Received: fine_tune_layers={fine_tune_layers!r}"
            )
        chosen = layers[names.index(fine_tune_layers):]
    return [
        layer for layer in chosen
        if layer.weights
        and not isinstance(layer, keras.layers.BatchNormalization)
    ]

"""Safe model loading: `.keras` files with `safe_mode=True`, nothing else.

A `.keras` file loaded with `safe_mode=True` cannot run code hidden in it
(lambda layers are refused). Legacy `.h5` files predate that protection and
are refused unless the caller opts in; SavedModel folders are not Keras
models in Keras 3 at all.

A model holding KerasHub objects (a `"hub:..."` backbone of the image
recipe) needs the `keras-hub` package to load; `load_model` imports it
first, or raises an `ImportError` naming the `hub` extra.
"""

import json
import os
import warnings
import zipfile

import keras

_LEGACY = (".h5", ".hdf5")
# Top-level packages of optional dependencies whose classes a saved model
# may name, and the keras-recipes extra that installs each.
_OPTIONAL = {"keras_hub": ("keras-hub", "hub")}


def import_keras_hub():
    """Import KerasHub, the optional package behind `"hub:..."` backbones.

    Returns:
        The `keras_hub` module.

    Raises:
        ImportError: If `keras-hub` is not installed; the message names the
            extra that installs it (`pip install "keras-recipes[hub]"`).

    Example:

    >>> import_keras_hub().__name__
    'keras_hub'
    """
    return _import_optional("keras_hub")


def _import_optional(package):
    import importlib

    distribution, extra = _OPTIONAL[package]
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(
            f"This needs the `{distribution}` package, which is not "
            f"installed ({error}). Install the `{extra}` extra: "
            f'pip install "keras-recipes[{extra}]"'
        ) from None


def import_model_packages(path):
    """Import the optional packages whose classes a `.keras` file names.

    Keras finds a registered class only once its package is imported. A
    `.keras` file saved from a model with a KerasHub backbone names
    `keras_hub` classes; this imports `keras_hub` for it, so that loading
    works in a session that never imported it, and fails with a clear
    `ImportError` where it is not installed. Files that name no optional
    package (or are not readable archives) are left to the loader.

    Args:
        path: Path of a `.keras` file.

    Returns:
        The sorted list of optional packages imported (e.g.
        `["keras_hub"]`), empty for most models.

    Raises:
        ImportError: If the file needs an optional package that is not
            installed; the message names the extra to install.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.save("/tmp/plain.keras")
    >>> import_model_packages("/tmp/plain.keras")
    []
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    named = set()

    def walk(value):
        if isinstance(value, dict):
            module = value.get("module")
            if isinstance(module, str):
                named.add(module.split(".", 1)[0])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(config)
    needed = sorted(named & set(_OPTIONAL))
    for package in needed:
        _import_optional(package)
    return needed


def load_model(path, allow_legacy=False, custom_objects=None, compile=True):
    """Load a Keras model safely, with clear errors for bad files.

    `.keras` files are loaded with `safe_mode=True`, always: a file whose
    config holds Python code (a `Lambda` layer's bytecode) is refused.
    Every keras-recipes object is registered, so models using them load
    without `custom_objects`.

    Args:
        path: Path to a `.keras` file (or a legacy `.h5`/`.hdf5` file when
            `allow_legacy=True`).
        allow_legacy: Whether to load a legacy HDF5 model file, which Keras
            loads without the `safe_mode` protection. A warning is issued.
            Defaults to `False`.
        custom_objects: Optional dict of extra classes/functions for
            deserialization. Defaults to `None`.
        compile: Whether to compile the model as it was saved.
            Defaults to `True`.

    Returns:
        The `keras.Model`.

    Raises:
        TypeError: If `path` is not a path, or `custom_objects` not a dict.
        FileNotFoundError: If `path` does not exist.
        ValueError: If the file is a folder, a weights-only file, a legacy
            file without `allow_legacy=True`, not a valid `.keras` archive,
            or refused by `safe_mode`.
        ImportError: If the model holds objects of an optional package
            that is not installed (KerasHub backbones need the `hub`
            extra).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.save("/tmp/example.keras")
    >>> restored = load_model("/tmp/example.keras")
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Argument `path` must be a path. Received: path={path!r}"
        )
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(
            "Argument `custom_objects` must be a dict mapping names to "
            "classes or functions, or None. "
            f"Received: custom_objects={custom_objects!r}"
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Argument `path` does not exist. Received: path={path!r}"
        )
    if os.path.isdir(path):
        raise ValueError(
            "Argument `path` is a folder (a TensorFlow SavedModel?). Keras 3 "
            "loads only `.keras` files as models; wrap a SavedModel with "
            f"`keras.layers.TFSMLayer` for inference. Received: path={path!r}"
        )
    lower = path.lower()
    if lower.endswith(".weights.h5"):
        raise ValueError(
            "Argument `path` is a weights-only file: build the model and "
            f"call `model.load_weights(path)`. Received: path={path!r}"
        )
    if lower.endswith(_LEGACY):
        return _load_legacy(path, allow_legacy, custom_objects, compile)
    if not lower.endswith(".keras"):
        raise ValueError(
            "Argument `path` must name a `.keras` file (or `.h5` with "
            f"`allow_legacy=True`). Received: path={path!r}"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            "Argument `path` is not a valid `.keras` file (not a zip "
            f"archive: truncated or corrupt?). Received: path={path!r}"
        )
    import_model_packages(path)
    try:
        return keras.saving.load_model(
            path, custom_objects=custom_objects, compile=compile,
            safe_mode=True,
        )
    except (ValueError, KeyError, OSError, TypeError,
            zipfile.BadZipFile) as error:
        raise ValueError(
            f"Argument `path` could not be loaded with safe_mode=True: "
            f"{error} Received: path={path!r}"
        ) from error


def _load_legacy(path, allow_legacy, custom_objects, compile):
    if not allow_legacy:
        raise ValueError(
            "Argument `path` is a legacy HDF5 model, which Keras loads "
            "without safe_mode protection. Pass `allow_legacy=True` if you "
            "trust the file, or re-save it as `.keras`. "
            f"Received: path={path!r}"
        )
    warnings.warn(
        f"Loading legacy HDF5 model {path!r} without safe_mode protection.",
        stacklevel=3,
    )
    try:
        return keras.saving.load_model(
            path, custom_objects=custom_objects, compile=compile,
        )
    except (ValueError, KeyError, OSError, TypeError) as error:
        raise ValueError(
            f"Argument `path` is not a readable HDF5 model: {error} "
            f"Received: path={path!r}"
        ) from error

"""Which files of a directory this library created, and may touch.

Every directory the library writes (a recipe's `output_dir`, a tuning
project, a `Checkpointing` folder) carries a manifest, `MANIFEST`, listing
the entries (files or folders, by name, directly inside the directory) the
library created there, and the settings of the run that created them. Only
listed entries are ever overwritten or deleted; a user's own file of the
same name is reported, never removed. `callbacks` holds this module so that
both packages share it (`recipes` imports `callbacks`, never the reverse).
"""

import contextlib
import hashlib
import json
import math
import os
import shutil

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: claims are not serialized across processes
    fcntl = None

MANIFEST = ".keras-recipes.json"
_KIND = "keras-recipes"
# Longest list `describe` records item by item.
_LISTED = 16


def check_path_part(argument, value):
    """Refuse a name that is not one plain path component.

    A project name joined to a directory must stay inside it: separators,
    `.`, `..`, absolute paths and empty names are refused, so that no
    `overwrite` can reach a folder outside the directory.

    Args:
        argument: The argument's name, for the message.
        value: The name.

    Returns:
        `value` as a string.

    Raises:
        ValueError: If `value` is not one plain path component.

    Example:

    >>> check_path_part("project_name", "cifar")
    'cifar'
    >>> check_path_part("project_name", "../thesis")
    Traceback (most recent call last):
    ValueError: Argument `project_name` must be one folder name ...
    Received: project_name='../thesis'
    """
    text = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if (not isinstance(text, str) or text in ("", ".", "..")
            or os.path.isabs(text) or "/" in text or "\\" in text
            or (os.altsep and os.altsep in text) or "\0" in text
            or os.path.splitdrive(text)[0]):
        raise ValueError(
            f"Argument `{argument}` must be one folder name (no path "
            "separators, `.` or `..`, not absolute). Received: "
            f"{argument}={value!r}"
        )
    return text


def read_manifest(directory):
    """The manifest of `directory` as a dict (`{}` if it has none)."""
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("kind") != _KIND:
        return {}
    return manifest


def owned(directory):
    """Names of the entries of `directory` this library created."""
    return {name for name in read_manifest(directory).get("entries", [])
            if isinstance(name, str) and _plain(name)}


def _plain(name):
    try:
        check_path_part("name", name)
    except ValueError:
        return False
    return name != MANIFEST


def _write(directory, manifest):
    path = os.path.join(directory, MANIFEST)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(directory):
    """Serialize manifest updates of processes sharing `directory` (the
    workers of a distributed search), so none loses another's entries."""
    if fcntl is None:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def claim(directory, *names, **fields):
    """Record `names` (entries of `directory`) as created by this library.

    Call it before creating the entries, so a crash never leaves one of
    ours unlisted. `fields` (e.g. `settings=...`) are stored alongside.
    The directory is created if needed.
    """
    for name in names:
        check_path_part("name", name)
    os.makedirs(directory, exist_ok=True)
    with _locked(directory):
        manifest = read_manifest(directory) or {"kind": _KIND,
                                                "entries": []}
        entries = list(manifest.get("entries", []))
        new = [name for name in names if name not in entries]
        if new or any(manifest.get(k) != v for k, v in fields.items()):
            manifest.update(fields, entries=entries + new)
            _write(directory, manifest)


def foreign(directory, names=None):
    """Entries of `directory` this library did not create.

    Args:
        directory: A folder (need not exist).
        names: Only these names; `None` for every entry.

    Returns:
        A sorted list of names.
    """
    if not os.path.isdir(directory):
        return []
    present = os.listdir(directory) if names is None else [
        n for n in names if os.path.lexists(os.path.join(directory, n))]
    mine = owned(directory)
    return sorted(n for n in present if n not in mine and not (
        n == MANIFEST or n.startswith(f"{MANIFEST}.tmp-")))


def remove_owned(directory, names=None):
    """Delete entries of `directory` that its manifest lists.

    Args:
        directory: A folder.
        names: Only these names (those not listed are left alone);
            `None` for every listed entry.

    Returns:
        The names removed.
    """
    mine = owned(directory)
    chosen = sorted(mine if names is None else mine & set(names))
    for name in chosen:
        path = os.path.join(directory, name)
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    if chosen:
        with _locked(directory):
            manifest = read_manifest(directory)
            manifest["entries"] = [n for n in manifest.get("entries", [])
                                   if n not in chosen]
            _write(directory, manifest)
    return chosen


def describe(value):
    """A JSON value that changes when `value` does, for settings checks.

    Plain values are kept; NumPy arrays become their shape, dtype and a
    hash of their bytes; other objects their type name.
    """
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [describe(v) for v in value]
        if len(items) <= _LISTED:
            return items
        # A corpus of strings or a list of arrays: recorded by its hash,
        # not copied into the manifest.
        return f"list[{len(items)}] #{_digest(json.dumps(items).encode())}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return describe(value.tolist())
    if isinstance(value, np.ndarray):
        digest = _digest(np.ascontiguousarray(value).tobytes())
        return f"array{list(value.shape)} {value.dtype} #{digest}"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__}>"


def _digest(data):
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def changed_settings(old, new):
    """`"name: old -> new"` for each setting that differs (sorted)."""
    if not isinstance(old, dict) or new is None:
        return []
    new = json.loads(json.dumps(new))
    return [f"{key}: {old.get(key, '(unset)')!r} → "
            f"{new.get(key, '(unset)')!r}"
            for key in sorted(set(old) | set(new))
            if old.get(key, "(unset)") != new.get(key, "(unset)")]

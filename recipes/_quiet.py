"""TensorFlow's C++ start-up log lines, held to `TF_CPP_MIN_LOG_LEVEL`.

TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, when it is first imported, but
writes a few lines (`cudart_stub.cc`, absl's "All log messages before
absl::InitializeLog()" notice) before reading it. `import recipes` imports
TensorFlow through `import_tensorflow()`, which removes those lines when
the level says so. The command line, the examples and the notebooks set
the level to 3 unless the user set their own.
"""

import contextlib
import os
import re
import sys
import tempfile

_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl/TF C++ record: "I0000 00:00:1796339375.932086   19128 file.cc:31] ..."
_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ [^ ]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog()"
# Python's own lines end a dropped record's continuation: a warning
# ("file.py:7: UserWarning: ...") or a traceback.
_PYTHON = re.compile(r"^(.+:\d+: \w+: |Traceback )")


def import_tensorflow(default_level=None):
    """Import TensorFlow and Keras; their C++ start-up lines obey the level.

    TensorFlow drops its C++ log lines below `TF_CPP_MIN_LOG_LEVEL`, except
    a few it writes before reading the variable; those are removed here from
    what the import wrote to stderr, and everything else is passed on.
    Does nothing if TensorFlow is already imported.

    Args:
        default_level: `TF_CPP_MIN_LOG_LEVEL` to set when the user has not
            set it (their value is kept), or `None` to leave the
            environment alone. 3 also hides the ERROR-level lines
            TensorFlow prints on a machine without a GPU (`failed call to
            cuInit`), which are not errors of the program. Defaults to
            `None`.
    """
    if default_level is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(default_level))
    if "tensorflow" in sys.modules:
        return
    try:
        minimum = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        minimum = 0
    with _without_log_lines(minimum):
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


def drop_log_lines(text, minimum):
    """`text` without the C++ log records of severity below `minimum`.

    A record's continuation lines (TensorFlow's CPU-instructions notice
    spans two) go with it.

    Args:
        text: What was written to stderr.
        minimum: 0 keeps everything, 1 drops INFO, 2 also WARNING (and
            absl's pre-initialization notice), 3 also ERROR.

    Returns:
        The kept lines, joined.
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        record = _RECORD.match(line)
        if record:
            dropping = _LEVELS[record.group(1)] < minimum
        elif line.startswith(_ABSL_PREAMBLE):
            dropping = minimum >= 2
        elif _PYTHON.match(line):
            dropping = False
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _without_log_lines(minimum):
    if minimum == 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            sys.stderr.write(drop_log_lines(text, minimum))
            sys.stderr.flush()

"""The internal API that `callbacks` shares with `recipes`.

`recipes` builds on `callbacks` (never the reverse) and reaches its
internals only through this module: argument checks with the library's
error wording, serialization registration, the manifest of files a run
owns, and the one module that touches Keras internals. It is not public
API and may change in any release; the public API is what
`callbacks/__init__.py` exports.

Shared here:

- `check_number`, `check_choice`, `check_backend`: the checks of user
  arguments ("Argument `x` must be ... Received: x=...").
- `register`: registers a class for `.keras` serialization under the
  `keras_recipes` package (`safe_mode=True` loads it without
  `custom_objects`).
- `ownership`: the `.keras-recipes.json` manifest of what a run created in
  a folder, the only files it ever replaces or deletes.
- `keras_compat`: every touch of Keras internals (private attributes,
  undocumented methods, loop conventions), one function or constant per
  touch point with the public API it stands in for; canary tests in
  `tests/test_keras_compat.py`.
"""

from callbacks import _keras_compat as keras_compat
from callbacks import _ownership as ownership
from callbacks._api import register
from callbacks._validation import check_backend, check_choice, check_number

__all__ = ["check_backend", "check_choice", "check_number", "keras_compat",
           "ownership", "register"]

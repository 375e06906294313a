"""`python -m recipes COMMAND ...`: see `recipes.cli`."""

import os
import sys

from recipes.cli import main

if __name__ == "__main__":
    # TensorFlow's C++ log lines (a CPU machine's "failed call to cuInit"
    # among them) are noise on a console; a level the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())

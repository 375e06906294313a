"""`python -m recipes COMMAND ...`: see `recipes.cli`."""

import sys

from recipes.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m dfd``: the command line (see :mod:`dfd.cli`)."""

import sys

from dfd.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Keeping the console chatter of C++ libraries (TensorFlow, LiteRT, Ray) off the terminal.

Their log lines are written straight to file descriptors 1 and 2, past Python's ``sys.stdout`` and
``sys.stderr`` and before (or apart from) any logging setting, so the descriptors themselves are redirected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def fds_to_devnull(*fds: int) -> Iterator[None]:
    """Point file descriptors ``fds`` (1: stdout, 2: stderr) at /dev/null for the block, then restore them.
    Exceptions still propagate, and are reported once the descriptors are back."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)

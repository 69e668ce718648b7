"""The one-line error, and how a stage or command reports it.

A PipelineError is a problem with the user's input or environment: shown as one line, never a
traceback. In a process started by PyTorch's elastic launcher (several training processes,
pipeline/training/distributed.py) the line is also handed to the launcher, which names it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any


class PipelineError(Exception):
    """A problem with the user's input or environment: shown as one line, no traceback."""


# What gloo and NCCL raise in a process whose peer died: a consequence, not the cause.
PEER_LOSS = ("connection closed by peer", "connection reset by peer", "broken pipe",
             "timed out", "timeout", "nccl communicator was aborted")


def is_peer_loss(message: str) -> bool:
    return any(k in message.lower() for k in PEER_LOSS)


def record_error(message: str) -> None:
    """In a process started by PyTorch's elastic launcher (which names the file), hand the
    launcher this process's one-line error."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with open(path, "w") as f:
            json.dump({"message": message, "timestamp": int(time.time())}, f)


def run_main(main: Callable[[], Any]) -> None:
    """Run a stage or command; a PipelineError becomes one line on stderr and exit code 1.
    In a process started by the distributed launcher, any error is also handed to the
    launcher, which names it in its own one line (pipeline/training/distributed.py)."""
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        record_error(str(e))
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        record_error(line)
        if os.environ.get("TORCHELASTIC_ERROR_FILE") and is_peer_loss(line):
            # another process failed first; the launcher names it
            print(f"error: lost the other processes ({line[:100]})", file=sys.stderr)
            sys.exit(1)
        raise

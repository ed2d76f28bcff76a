"""What every command line here shares: how it ends (a status; one line for Ctrl-C or a closed
pipe), its ``--seed`` type, and how it prints text from outside (:func:`shown`).

Each system's ``__main__`` ends with ``sys.exit(run(main))``. ``main(argv)`` itself returns a status
(0, or 2 with an ``error:`` line for bad input) and is what the tests call. ``run`` adds what only
a real terminal brings:

* **Ctrl-C** prints ``interrupted`` on stderr and returns 130, the shell's code for a SIGINT,
  instead of a traceback of wherever the work was. The ``with`` blocks it unwinds release their
  locks and remove their temporary files on the way out; stores are written atomically, so an
  interrupted save leaves the previous file. Libraries do not always let the
  ``KeyboardInterrupt`` through: pandas' C parser, interrupted inside ``read_csv``, raises
  ``ParserError`` instead, with no trace of the interrupt. So ``run`` notes the SIGINT itself,
  and a failure that follows one (an exception, or a non-zero status from a caught one) counts
  as the interrupt. A SIGINT the process ignores (a background job) or handles its own way is
  left alone.
* **A seed** (``--seed``) is read by :func:`seed`, an argparse type: numpy, scikit-learn and
  LightGBM take 0 to 2**32 - 1, so anything else is argparse's one error line before any work.
* **Text from outside** (document titles, file names, a model's answer) is printed through
  :func:`shown`, which escapes control characters: printed raw, ``ESC[2J`` clears the screen
  and ``ESC]52;...`` sets the clipboard of terminals that allow it.
* **A reader that has gone** (``python -m rag search ... | head -1``): the next print raises
  ``BrokenPipeError``. Nothing more can be shown, so stdout is pointed at ``os.devnull`` (else the
  interpreter's final flush raises again) and ``run`` returns 1, as the Python documentation's
  note on SIGPIPE recommends.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable

__all__ = ["run", "seed", "shown"]

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
SEED_LIMIT = 2**32  # numpy's seeds are 0 .. 2**32 - 1
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0, DEL and C1, but \t and \n


def shown(text: str) -> str:
    r"""``text`` with its control characters but tab and newline printed escaped (``\x1b``).

    For anything a command prints that came from outside the program: titles, chunks and file
    names from indexed files, answers from a model a document can steer. Each character is
    escaped on its own, so streamed text can be shown piece by piece: an escape sequence split
    across two pieces is neutralised all the same.

    >>> shown("title\x1b[2J\tend")
    'title\\x1b[2J\tend'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def seed(text: str) -> int:
    """``--seed`` as an int from 0 to 2**32 - 1 (argparse ``type=``), else argparse's error line.

    >>> seed("42")
    42
    """
    valid = "must be an integer from 0 to 2**32 - 1"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{valid}, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{valid}, got {value}")
    return value


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit status; 130 after Ctrl-C, 1 after a closed stdout; never a traceback."""
    seen = []

    def on_sigint(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # not ignored, not the caller's own handler
        signal.signal(signal.SIGINT, on_sigint)
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows here for output still buffered
        if seen and status not in (0, INTERRUPTED):  # an interrupt turned into an error
            raise KeyboardInterrupt
        return status  # 130 from a main() that handled the interrupt itself: its own words
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception:
        if seen:  # e.g. pandas' ParserError for a read_csv the SIGINT cut short
            print("interrupted", file=sys.stderr)
            return INTERRUPTED
        raise
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)

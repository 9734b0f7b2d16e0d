"""Quiet start-up: native libraries' start-up lines stay off the terminal unless ``--debug``.

TensorFlow prints absl/CUDA/oneDNN lines when it is imported ("oneDNN custom operations
are on", "Could not find cuda drivers", "Unable to register cuDNN factory", "failed call to
cuInit") and LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." and
"INFO: [accelerator_registry.cc...]" when a model is prepared. Both write to file
descriptor 2 from C++, so neither Python's ``warnings`` nor ``TF_CPP_MIN_LOG_LEVEL`` alone
holds them back: :func:`native_output_silenced` sends fd 2 to a temporary file around those
calls and drops what was written, unless the call fails (then it is replayed, so the reason
is never lost) or debugging is on.

The CLI's group-level ``--debug`` sets :data:`DEBUG_ENV` for the call (:func:`debug_mode`;
child processes such as bench's workers inherit it); :func:`quiet_environment` sets the
logging variables TensorFlow reads when it is imported. Runtime tier: standard library only.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

#: Set to "1" by ``ich-edge --debug``: native start-up lines are let through.
DEBUG_ENV = "ICH_EDGE_DEBUG"

#: Environment variables that quiet TensorFlow's own logging; set before it is imported.
TF_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def debug_enabled() -> bool:
    """True when ``--debug`` (or ``ICH_EDGE_DEBUG=1``) asks for the native libraries' lines."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextmanager
def debug_mode(debug: bool) -> Iterator[None]:
    """Within the block, ``--debug`` holds for this process and its children (``ICH_EDGE_DEBUG=1``),
    and without it TensorFlow's logging variables are set; the previous ``ICH_EDGE_DEBUG`` comes
    back afterwards (one CLI call in a long-lived process does not change the next one)."""
    previous = os.environ.get(DEBUG_ENV)
    if debug:
        os.environ[DEBUG_ENV] = "1"
    quiet_environment()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = previous


def quiet_environment() -> None:
    """Set TensorFlow's logging variables (kept where the user set them), unless debugging."""
    if debug_enabled():
        return
    for name, value in TF_QUIET_ENV.items():
        os.environ.setdefault(name, value)


@contextmanager
def native_output_silenced(replay_on_error: bool = True) -> Iterator[None]:
    """Drop what native code writes to fd 2 inside the block; replay it if the block raises,
    unless ``replay_on_error`` is False (for calls whose exception already carries the text,
    such as a Rust decoder's panic, which its panic hook also prints: once per slice).

    A no-op when debugging (:func:`debug_enabled`) or when fd 2 cannot be redirected.
    """
    if debug_enabled():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (an embedded interpreter)
        yield
        return
    if not replay_on_error:  # nothing to keep: the null device, no temporary file per call
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                captured.seek(0)
                text = captured.read()
                if text:
                    os.write(2, text)


def silence_teardown() -> None:
    """Send fd 2 to the null device for the rest of the process, unless debugging.

    For the console entry point, after the verb has written everything: LiteRT's
    accelerator registry prints "INFO: [accelerator_registry.cc:43] DestroyAccelerator ..."
    from C++ destructors while the process exits.
    """
    if debug_enabled():
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass

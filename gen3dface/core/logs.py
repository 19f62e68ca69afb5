"""Library chatter off, for the command line: a failure prints one line, a success only what the command says.

Left alone, a run prints diffusers' and transformers' loading messages, Python warnings of the libraries
(deprecations, unsafe-serialization notices) and mediapipe's C++ log lines (``W0000 ... Feedback manager
requires a model with a single signature ...``), which abseil writes straight to file descriptor 2, some of them
from its own threads or as the process exits. :func:`quiet_library_logs` turns the Python-level ones down to
errors; :func:`silence_native_stderr` points descriptor 2 at the null device for the rest of the process while
``sys.stderr`` (the command's own messages, progress bars, tracebacks of bugs) keeps the real one. Set
``GEN3DFACE_NATIVE_LOGS=1`` to see the native lines again when debugging a library.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: set (to anything but 0 or empty) to keep native libraries' log lines on stderr
NATIVE_LOGS_ENV = "GEN3DFACE_NATIVE_LOGS"
#: environment variables read by the libraries as they load (so set before they are imported)
LIBRARY_ENV = {
    "GLOG_minloglevel": "2",  # glog-based C++ (older mediapipe): errors only
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow Lite inside mediapipe
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
#: Python loggers of the libraries, set to errors only
LIBRARY_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "absl", "mediapipe", "PIL", "matplotlib")


def native_logs_wanted() -> bool:
    """Whether the user asked to see native libraries' log lines (:data:`NATIVE_LOGS_ENV`)."""
    return os.environ.get(NATIVE_LOGS_ENV, "").strip() not in ("", "0")


def quiet_library_logs() -> None:
    """Library logging and warnings down to errors, for this process and the workers it starts. The package's
    own warnings (the notes the command line prints) are kept."""
    for key, value in LIBRARY_ENV.items():
        os.environ.setdefault(key, value)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("diffusers", "transformers"):
        if name in sys.modules:  # already imported: its own verbosity setting wins over the logger's level
            try:
                sys.modules[name].utils.logging.set_verbosity_error()
            except AttributeError:  # pragma: no cover - a library version without it
                pass
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"gen3dface(\.|$)")


def silence_native_stderr() -> bool:
    """Point file descriptor 2 at the null device for the rest of the process, and ``sys.stderr`` at a copy of
    the real one. Returns whether it did (not when :func:`native_logs_wanted`, or when ``sys.stderr`` is not
    descriptor 2, e.g. under a test runner's capture).

    For a process that is the command line itself: native code (abseil, TFLite, CUDA libraries) can no
    longer write to the terminal, while every Python-level message still reaches it.
    """
    if native_logs_wanted():
        return False
    try:
        sys.stderr.flush()
        if sys.stderr.fileno() != 2:
            return False
        real = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real stderr (some notebook front ends, pythonw)
        return False
    stream = os.fdopen(
        real,
        "w",
        buffering=1,
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors=getattr(sys.stderr, "errors", None) or "backslashreplace",
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    sys.stderr = stream
    return True

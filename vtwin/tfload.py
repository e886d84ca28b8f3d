"""TensorFlow and Keras, imported once with their start-up chatter silenced.

TensorFlow 2.21 writes absl log lines to stderr while it loads (oneDNN and CPU-feature notices)
even with TF_CPP_MIN_LOG_LEVEL=3; they would break the one-line error rule of every command. The
import points file descriptor 2 at /dev/null and restores it afterwards. Import `tf` and `keras`
from here, never tensorflow directly.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _quiet_import():
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import keras
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return tensorflow, keras


tf, keras = _quiet_import()

"""Printing results: ``--json`` objects and plain tables."""
from __future__ import annotations

import json
import math
import sys

import numpy as np


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is not None and not isinstance(obj, (str, int, float, bool)):
        try:
            import pandas as pd

            if obj is pd.NA:
                return None
        except ImportError:
            pass
        return str(obj)
    return obj


def emit_json(obj, stream=None) -> None:
    """Print ``obj`` as one JSON document (numpy scalars and NaN made plain)."""
    json.dump(_plain(obj), stream or sys.stdout, indent=2, ensure_ascii=False)
    (stream or sys.stdout).write("\n")


def positive_int(text: str) -> int:
    """argparse type for counts such as ``-n``: a whole number >= 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def weight_argument(text: str) -> float:
    """argparse type for ``--visual-weight``: a number between 0 and 1."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value

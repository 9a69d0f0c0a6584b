"""Printing results: ``--json`` objects and plain tables."""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

# The most results one query may ask for: `posterec.recommender.Recommender` refuses more (its
# MAX_N is the same number), so the CLI refuses it as a usage error before loading anything.
MAX_N = 1000


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
        pd = sys.modules.get("pandas")  # pd.NA can only come from pandas already imported
        if pd is not None and obj is pd.NA:
            return None
        return str(obj)
    return obj


def emit_json(obj, stream=None) -> None:
    """Print ``obj`` as one JSON document (numpy scalars and NaN made plain)."""
    json.dump(_plain(obj), stream or sys.stdout, indent=2, ensure_ascii=False)
    (stream or sys.stdout).write("\n")


def positive_int(text: str) -> int:
    """argparse type for sizes such as ``--workers`` or ``--batch-size``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def number_between(low, high, cast=float, what: str = "a number"):
    """An argparse type: ``cast(text)`` within ``[low, high]``, else a usage error saying so."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} in {low}..{high}, got {text!r}") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    return parse


weight_argument = number_between(0.0, 1.0, float, "a visual weight")   # ``--visual-weight``
port_argument = number_between(0, 65535, int, "a port number")          # ``--port``; 0 picks a free one


def count(text: str) -> int:
    """argparse type for result counts (``-n``): a whole number from 1 to `MAX_N`."""
    value = positive_int(text)
    check_count(value)
    return value


def check_count(value: int) -> None:
    """Raise argparse.ArgumentTypeError when ``value`` is above `MAX_N`."""
    if value > MAX_N:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_N}, got {value}")

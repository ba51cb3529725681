"""Type predicates shared by the checks of user input (configs, options): a bool is never a number.

Validators import these rather than spelling out ``isinstance(v, bool)`` / ``math.isfinite`` inline.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def is_int(v: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))

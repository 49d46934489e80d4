"""One notion of doubt for every answer digitrec gives (predict, read, serve, batch).

An answer is either given, or flagged with one of these reasons, which the JSON, the CSV, the
page and the batch table carry as they are:
"""

from __future__ import annotations

NOT_A_DIGIT = "not a digit"  # a letter, symbol, scribble or texture: the rejector said so
SEVERAL_DIGITS = "several digits"  # more than one digit in one-digit mode: use `read`
LOW_CONFIDENCE = "low confidence"  # a digit, but its calibrated probability is under min_confidence
NO_INK = "no ink"  # a blank or noise-only image: nothing written

REASONS = (NOT_A_DIGIT, SEVERAL_DIGITS, LOW_CONFIDENCE, NO_INK)

"""Decimal points, thousands separators and minus signs kept in a reading (`keep_punctuation`).

The reader reads digits (`digitrec.read`); a line reader whose alphabet has the marks
(`line_reader.ALPHABET`: '.', ',', '-') also says where a mark is written. The digits stay
exactly those the reader chose: `punctuate` finds the line reader's most likely alignment of
*those* digits with an optional mark in each gap between two of them, and a minus sign before
the first (a constrained Viterbi over the CTC columns, so the answer never gains or loses a
digit). Marks after the last digit (an amount's closing '.-' or '=') are not kept: they are not
part of a number. `punctuate` is numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from digitrec.errors import ModelError
from digitrec.preprocess.segment import Segmentation, TextLine
from digitrec.read.line_reader import LineReader, line_image

if TYPE_CHECKING:
    from digitrec.read.result import ReadDigit

LEADING = "-"  # the only mark kept before the first digit


def punctuate(digits: str, log_probs: np.ndarray, alphabet: str) -> str:
    """`digits` (the reader's, in order) and the line reader's (T, len(alphabet) + 1) per-column
    log-probabilities (blank last) -> the digits with the marks the line reader places between
    them (and a leading minus). A line too short for the digits gets no marks."""
    marks = [k for k, ch in enumerate(alphabet) if not ch.isdigit()]
    if not digits or not marks:
        return digits
    blank = len(alphabet)
    # The label sequence: slot 0 (a leading minus), digit 1, slot 1, digit 2, ..., digit n; each
    # slot optional and holding one mark. CTC states: a blank before and after every label.
    labels: list[tuple[str, int | list[int]]] = [("slot", [alphabet.index(LEADING)] if LEADING in alphabet else [])]
    for k, ch in enumerate(digits):
        labels.append(("digit", alphabet.index(ch)))
        if k < len(digits) - 1:
            labels.append(("slot", marks))
    states: list[tuple[str, int | list[int]]] = [("blank", blank)]
    for label in labels:
        states += [label, ("blank", blank)]
    n, t_len = len(states), len(log_probs)
    # Emission per state and column; a slot emits its best mark (remembered for the answer).
    emit = np.full((t_len, n), -np.inf)
    best_mark = np.zeros((t_len, n), np.int64)
    for s, (kind, token) in enumerate(states):
        if kind == "slot":
            if token:
                cols = log_probs[:, token]
                emit[:, s], best_mark[:, s] = cols.max(axis=1), np.asarray(token)[cols.argmax(axis=1)]
        else:
            emit[:, s] = log_probs[:, token]
    # Allowed moves into state s (CTC's, plus skipping an optional slot): a blank from its label
    # or, past an unused slot, from the blank before it; a mark from the blank or the digit before
    # it; a digit from the blank before it, from the mark before it, or past an unused slot from
    # the blank before the slot or straight from the previous digit when the two differ.
    kinds = [kind for kind, _ in states]
    preds = []
    for s, (kind, token) in enumerate(states):
        p = [s, s - 1]
        if kind == "blank" and s >= 2 and kinds[s - 1] == "slot":
            p.append(s - 2)
        if kind == "slot" and s >= 2 and kinds[s - 2] == "digit":
            p.append(s - 2)
        if kind == "digit" and s >= 3 and kinds[s - 2] == "slot":
            p += [s - 2, s - 3]
            if s >= 4 and states[s - 4][1] != token:
                p.append(s - 4)
        preds.append([q for q in p if q >= 0])
    score = np.full(n, -np.inf)
    for s in (0, 1, 3):  # a blank, the leading minus, or the first digit
        score[s] = emit[0, s]
    # The moves as an (n, 5) table of predecessors, padded with n: a state that is never reached.
    table = np.full((n, 5), n, np.int64)
    for s, p in enumerate(preds):
        table[s, : len(p)] = p
    rows = np.arange(n)
    back = np.zeros((t_len, n), np.int64)
    for t in range(1, t_len):
        candidates = np.append(score, -np.inf)[table]  # (n, 5)
        best = candidates.argmax(axis=1)
        back[t] = table[rows, best]
        score = candidates[rows, best] + emit[t]
    last_digit = n - 2
    end = max((n - 1, last_digit), key=lambda s: score[s])
    if not np.isfinite(score[end]):
        return digits
    # Back through the path: the columns each slot state held, and its most likely mark there.
    held: dict[int, int] = {}
    s = end
    for t in range(t_len - 1, -1, -1):
        if states[s][0] == "slot" and (s not in held or emit[t, s] > emit[held[s], s]):
            held[s] = t
        s = back[t, s] if t else s
    out = []
    for s, (kind, token) in enumerate(states):
        if kind == "digit" and isinstance(token, int):
            out.append(alphabet[token])
        elif kind == "slot" and s in held:
            out.append(alphabet[int(best_mark[held[s], s])])
    return "".join(out)


def punctuate_lines(reader: LineReader, seg: Segmentation, lines: list[list[ReadDigit]]) -> list[str]:
    """The reader's chosen digit lines (`choose.choose_digits`) -> each line's text with its
    marks. Each digit line is matched to the segmented line that holds its digits' centres, read
    again by the line reader `reader` with its whole alphabet. Raises ModelError when that
    writes digits only (a line reader trained before the marks)."""
    if reader.alphabet == "0123456789":
        raise ModelError(f"{reader.path} reads digits only: keeping punctuation needs a line reader with marks")
    texts = []
    for digits in lines:
        text = "".join(str(d.digit) for d in digits)
        line = _line_of(seg, digits)
        if line is None:
            texts.append(text)
            continue
        log_probs = reader.log_probs_all(line_image(line.atoms, seg.ink, seg.stroke, line.height))
        texts.append(punctuate(text, log_probs, reader.alphabet))
    return texts


def _line_of(seg: Segmentation, digits: list[ReadDigit]) -> TextLine | None:
    """The segmented text line holding most of the digits' box centres (input px -> working px)."""
    best, most = None, 0
    for line in seg.lines:
        x0, x1 = min(a.x for a in line.atoms), max(a.x + a.w for a in line.atoms)
        held = 0
        for d in digits:
            cx, cy = (d.box[0] + d.box[2] / 2) * seg.scale, (d.box[1] + d.box[3] / 2) * seg.scale
            held += x0 <= cx <= x1 and line.top <= cy <= line.bottom
        if held > most:
            best, most = line, held
    return best

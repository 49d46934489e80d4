"""The reader's second opinion: a whole line of digits read at once, without cutting it. (onnxruntime only.)

Cutting touching digits apart is the reader's weak spot: when two digits interleave, no cut the
segmenter can draw gives either of them cleanly, so the classifier never sees them whole. A line
model needs no cuts. `assets/line_reader.onnx` (trained by `python -m digitrec.train.line_reader`)
is a small CNN that reads the line's ink, normalised like MNIST (digits about 20 px tall, strokes
in MNIST's width range, `line_image`), column by column, and is trained with CTC (Graves et al.,
2006): it outputs, for every 4-pixel column, the probability of each digit and of "no new digit"
(the blank). The reader (`digitrec.read`) weighs the line model's probability of a reading
against the segmentation's own score; the segmentation still gives every digit its box.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from digitrec import paths
from digitrec.errors import ModelError
from digitrec.modelfile.card import companion_path
from digitrec.modelfile.read import log_softmax, open_model
from digitrec.preprocess.digit import BOX, RENDER, normalize_stroke
from digitrec.preprocess.segment import Atom, render_group
from digitrec.read.pattern import DigitPattern

HEIGHT = 32  # the line image's height, px; digits are BOX (20) px tall in it, as in MNIST
STRIDE = 4  # the model gives one output column per STRIDE px of image width
PAD = 8  # blank columns left and right, px
DIGITS = "0123456789"
# What a line reader can write, in its output order; CTC's blank follows. A reader trained before
# the marks (its card has no "alphabet") writes digits only. The marks are those kept by
# `keep_punctuation`: a decimal point, a thousands separator, a minus sign (`synth.KEPT_MARKS`).
ALPHABET = DIGITS + ".,-"
BLANK = 10  # the digits-only blank: `LineReader.log_probs` folds the marks into it


def default_line_reader_path() -> Path:
    return paths.assets_dir() / "line_reader.onnx"


def line_reader_path_for(model: Path, card: Mapping[str, object]) -> Path:
    """The line reader a digit model reads with: the one its card names (`finetune --numbers` writes
    mine.line.onnx beside mine.onnx; a relative name is beside the model), else the shipped one."""
    return companion_path(model, card, "line_reader", "line reader") or default_line_reader_path()


def line_image(atoms: list[Atom], ink: np.ndarray, stroke: float, digit_height: float) -> np.ndarray:
    """The atoms of one text line -> uint8 (HEIGHT, W) image, ink = 255 on black, W a multiple of
    STRIDE: the line scaled so that its digits are BOX px tall, strokes brought into MNIST's width
    range at RENDER x scale (as `fit_and_centre` does for one digit), vertically centred."""
    crop = render_group(atoms, ink, stroke)
    h, w = crop.shape
    scale = BOX / max(digit_height, 1.0)
    if h * scale > HEIGHT - 2:  # a line taller than its digits (a tail, a tilt): fit it in
        scale = (HEIGHT - 2) / h
    big_w, big_h = max(1, round(w * scale * RENDER)), max(1, round(h * scale * RENDER))
    grow = cv2.INTER_LINEAR if scale * RENDER > 1 else cv2.INTER_AREA
    hi = normalize_stroke(cv2.resize(crop.astype(np.float32), (big_w, big_h), interpolation=grow), RENDER)
    small = cv2.resize(hi, (max(1, round(big_w / RENDER)), max(1, round(big_h / RENDER))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    width = -(-(sw + 2 * PAD) // STRIDE) * STRIDE
    out = np.zeros((HEIGHT, width), np.float32)
    top = (HEIGHT - sh) // 2
    out[top : top + sh, PAD : PAD + sw] = small
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def greedy_decode(log_probs: np.ndarray, alphabet: str = DIGITS) -> tuple[str, float]:
    """(T, len(alphabet) + 1) per-column log-probabilities, the blank last -> (the best path's
    characters, with repeats merged and blanks dropped; the best path's log-probability)."""
    blank = len(alphabet)
    best = log_probs.argmax(axis=1)
    text, previous = [], blank
    for k in best:
        if k != blank and k != previous:
            text.append(alphabet[int(k)])
        previous = k
    return "".join(text), float(log_probs.max(axis=1).sum())


def constrained_decode(log_probs: np.ndarray, pattern: DigitPattern) -> tuple[str, float]:
    """`greedy_decode` held to `pattern` (`digitrec.read.pattern`): the best single path through
    the (T, 11) columns whose digits the automaton accepts, found by Viterbi over (automaton
    state, last label), so a path leaves the search as soon as it can no longer match.
    -> (its digits, its log-probability); ("", -inf) when no path of these columns matches."""
    t_len, states = len(log_probs), pattern.states
    if not t_len or not states:
        return "", -np.inf
    labels = BLANK + 1
    # score[s, l]: the best path so far that is in state s with label l last (BLANK: a blank).
    score = np.full((states, labels), -np.inf)
    back = np.zeros((t_len, states, labels, 2), np.int32)  # (previous state, previous label)
    score[0, BLANK] = log_probs[0, BLANK]
    for d in range(BLANK):
        if pattern.step[0, d] >= 0:
            score[pattern.step[0, d], d] = log_probs[0, d]
    for t in range(1, t_len):
        new = np.full_like(score, -np.inf)
        best_label = score.argmax(axis=1)  # per state, its best path whatever came last
        best_any = score[np.arange(states), best_label]
        # A blank: stay in the state.
        new[:, BLANK] = best_any + log_probs[t, BLANK]
        back[t, :, BLANK, 0], back[t, :, BLANK, 1] = np.arange(states), best_label
        for d in range(BLANK):
            # The same digit again, merged (CTC): stay.
            new[:, d] = score[:, d] + log_probs[t, d]
            back[t, :, d, 0], back[t, :, d, 1] = np.arange(states), d
            # A new digit d: after a blank or another digit, step the automaton.
            others = score.copy()
            others[:, d] = -np.inf
            came = others.argmax(axis=1)
            came_score = others[np.arange(states), came]
            for s in range(states):
                to = pattern.step[s, d]
                if to >= 0 and came_score[s] + log_probs[t, d] > new[to, d]:
                    new[to, d] = came_score[s] + log_probs[t, d]
                    back[t, to, d] = (s, came[s])
        score = new
    ends = np.where(pattern.accept[:, None], score, -np.inf)
    if ends.max() == -np.inf:
        return "", -np.inf
    state, label = (int(v) for v in np.unravel_index(int(ends.argmax()), ends.shape))
    total = float(ends[state, label])
    columns = []
    for t in range(t_len - 1, 0, -1):
        columns.append(label)
        state, label = (int(v) for v in back[t, state, label])
    columns.append(label)
    text, previous = [], BLANK
    for k in columns[::-1]:
        if k != BLANK and k != previous:
            text.append(str(k))
        previous = k
    return "".join(text), total


def string_log_prob(log_probs: np.ndarray, text: str) -> float:
    """log P(text | line) under CTC: the sum over every alignment of `text` to the columns
    (the forward algorithm, in log space). -inf when the line has too few columns for it."""
    labels = [BLANK]
    for ch in text:
        labels += [int(ch), BLANK]
    s_len, t_len = len(labels), len(log_probs)
    alpha = np.full(s_len, -np.inf)
    alpha[0] = log_probs[0, BLANK]
    if s_len > 1:
        alpha[1] = log_probs[0, labels[1]]
    labels_arr = np.array(labels)
    # A jump over a blank is allowed between two different digits only.
    skip = np.zeros(s_len, bool)
    skip[2:] = (labels_arr[2:] != BLANK) & (labels_arr[2:] != labels_arr[:-2])
    prev1, prev2 = np.full(s_len, -np.inf), np.full(s_len, -np.inf)
    for t in range(1, t_len):
        prev1[1:] = alpha[:-1]
        prev2[2:] = alpha[:-2]
        prev2[~skip] = -np.inf
        alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + log_probs[t, labels_arr]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if s_len > 1 else alpha[-1])


class LineReader:
    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path else default_line_reader_path()
        # The card says how the network is fed (input name, pixel scaling), as for any digit model.
        self.session, card = open_model(self.path, "line reader", threads, require_input=True)
        assert card is not None  # require_input: a file without a card was refused
        if card.kind != "line-reader":
            raise ModelError(f"{self.path} is not a line reader (its card says kind={card.kind!r})")
        self.card, self.input = card.data, card.input
        self.alphabet = str(self.card.get("alphabet", DIGITS))
        if not self.alphabet.startswith(DIGITS):
            raise ModelError(f"{self.path}: its alphabet {self.alphabet!r} does not start with the digits 0-9")

    def log_probs_all(self, image: np.ndarray) -> np.ndarray:
        """uint8 (HEIGHT, W) from `line_image` -> float32 (W / STRIDE, len(alphabet) + 1) per-column
        log-probabilities of each character of `self.alphabet`, then of the blank."""
        x = self.input.scale(image)[None, None]  # (1, 1, HEIGHT, W)
        return log_softmax(self.session.run(None, {self.input.name: x})[0][0])

    def log_probs(self, image: np.ndarray) -> np.ndarray:
        """uint8 (HEIGHT, W) from `line_image` -> float32 (W / STRIDE, 11) per-column log-probabilities
        of the digits and of "no new digit" (BLANK): a mark is no new digit, so the marks' columns
        are folded into the blank's and the reader reads digits as with a digits-only model."""
        full = self.log_probs_all(image)
        if full.shape[1] == BLANK + 1:
            return full
        return np.concatenate([full[:, :BLANK], np.logaddexp.reduce(full[:, BLANK:], axis=1, keepdims=True)], axis=1)

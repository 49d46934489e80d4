"""What a reading may be: `--digits N` and `--pattern REGEX` as one finite automaton over digits.

The reader's decoders step this automaton as they search (`decode.best_path` over the cut-up
pieces, `line_reader.constrained_decode` over the line reader's CTC columns), so a path that can no
longer match is dropped as soon as it goes wrong, and the best path that matches is found, never
the best path filtered afterwards. A regular expression over the digits 0-9 is parsed here (a small
grammar, below), turned into a Thompson NFA and then into a DFA by the subset construction (Aho,
Sethi & Ullman, "Compilers", 3.7); states that cannot reach a match are removed, so "dead" is -1.

The grammar: digits, `.` and `\\d` (any digit), classes `[0-9]`, `[^0]`, groups `( )` and `(?: )`,
`|`, and the repeats `* + ? {m} {m,} {m,n}`. The pattern must match the whole reading (as
`re.fullmatch`); `^` and `$` at its ends are allowed and change nothing. Anything else (letters,
look-arounds, back-references) is refused with a `PatternError`: a reading holds digits only.
numpy only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from digitrec.errors import DigitrecError

DIGITS = frozenset(range(10))
MAX_REPEAT = 64  # {m,n} bounds: no number is longer
MAX_STATES = 4096  # DFA states: a hostile pattern ((0|1)*0(0|1){20}) is refused, not built for minutes


class PatternError(DigitrecError, ValueError):
    """A --digits or --pattern the reader cannot use (also a ValueError, as the README says of a
    bad argument to the Python API)."""


@dataclass(frozen=True)
class DigitPattern:
    """A DFA over the digits 0-9: `step[s, d]` is the state after digit d in state s (-1: no
    reading that goes this way can match); state 0 is the start; `accept[s]` says a reading that
    ends in s matches. Every state can still reach a match."""

    step: np.ndarray  # int32 (S, 10)
    accept: np.ndarray  # bool (S,)
    text: str  # what the user asked for, for messages: "4 digits", "pattern 7\\d{3}"

    @property
    def states(self) -> int:
        return len(self.accept)

    def matches(self, digits: str) -> bool:
        state = 0
        for ch in digits:
            state = int(self.step[state, int(ch)])
            if state < 0:
                return False
        return bool(self.accept[state])

    def __and__(self, other: DigitPattern) -> DigitPattern:
        """Readings both accept (the product automaton, reachable pairs only)."""
        index = {(0, 0): 0}
        todo, rows, accept = [(0, 0)], [], []
        while todo:
            a, b = todo.pop(0)
            row = np.full(10, -1, np.int32)
            for d in range(10):
                pair = (int(self.step[a, d]), int(other.step[b, d]))
                if pair[0] < 0 or pair[1] < 0:
                    continue
                if pair not in index:
                    index[pair] = len(index)
                    todo.append(pair)
                row[d] = index[pair]
            rows.append(row)
            accept.append(bool(self.accept[a] and other.accept[b]))
        return _pruned(np.array(rows, np.int32), np.array(accept), f"{self.text} and {other.text}")


def exactly(text: str) -> DigitPattern:
    """The one reading `text` (a string of digits)."""
    n = len(text)
    step = np.full((n + 1, 10), -1, np.int32)
    for k, ch in enumerate(text):
        step[k, int(ch)] = k + 1
    accept = np.zeros(n + 1, bool)
    accept[n] = True
    return DigitPattern(step, accept, repr(text))


def n_digits(n: int) -> DigitPattern:
    """Any reading of exactly `n` digits."""
    if not 1 <= n <= MAX_REPEAT:
        raise PatternError(f"--digits must be between 1 and {MAX_REPEAT}, not {n}")
    step = np.full((n + 1, 10), -1, np.int32)
    step[:n] = np.arange(1, n + 1, dtype=np.int32)[:, None]
    accept = np.zeros(n + 1, bool)
    accept[n] = True
    return DigitPattern(step, accept, f"{n} digit{'s' if n > 1 else ''}")


def constraint(digits: int | None = None, pattern: str | None = None) -> DigitPattern | None:
    """The automaton for `--digits` and `--pattern` together (both must hold); None for neither.
    Raises PatternError when the pattern is malformed or no reading can satisfy both."""
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, numbers.Integral)):
        raise PatternError(f"digits is how many digits the number has (a whole number), not {digits!r}")
    if pattern is not None and not isinstance(pattern, str):
        raise PatternError(f"pattern is a regular expression over the digits (a string), not {pattern!r}")
    parts = []
    if digits is not None:
        parts.append(n_digits(digits))
    if pattern is not None:
        parts.append(compile_pattern(pattern))
    if not parts:
        return None
    result = parts[0] if len(parts) == 1 else parts[0] & parts[1]
    if not result.states:
        raise PatternError(f"no number can be {result.text}")
    return result


def _quoted(text: str) -> str:
    """`text` in quotes as it was typed, for a message (`'\\d{4}'` with one backslash, where repr
    doubles it); repr where it holds a quote or anything unprintable (a newline, a terminal's
    escape codes), which must not reach the terminal raw."""
    return f"'{text}'" if text.isprintable() and "'" not in text else repr(text)


def compile_pattern(pattern: str) -> DigitPattern:
    """A regular expression over digits -> its DFA. Raises PatternError."""
    nfa = _Nfa()
    start, end = _Parser(pattern, nfa).parse()
    result = _determinise(nfa, start, end, f"pattern {pattern}")
    if not result.states:
        raise PatternError(f"the pattern {_quoted(pattern)} matches no string of digits")
    if not (result.step >= 0).any():  # `--pattern ''`, '^$', '()': every file would fail to match
        raise PatternError(
            f"the pattern {_quoted(pattern)} matches only an empty reading; a number has at least one digit"
        )
    return result


# --- regex -> NFA ----------------------------------------------------------------------------


class _Nfa:
    """Thompson NFA: per state, its digit moves {digit set, target} and its empty moves."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[frozenset[int], int]]] = []
        self.empty: list[list[int]] = []

    def state(self) -> int:
        self.moves.append([])
        self.empty.append([])
        if len(self.moves) > 64 * MAX_STATES:
            raise PatternError("the pattern is too large")
        return len(self.moves) - 1


Fragment = tuple[int, int]  # (entry state, exit state) of a piece of the NFA


class _Parser:
    """Recursive descent: alternation -> concatenation -> repeat -> atom."""

    def __init__(self, pattern: str, nfa: _Nfa):
        self.text, self.pos, self.nfa = pattern, 0, nfa

    def fail(self, why: str) -> PatternError:
        return PatternError(f"cannot use the pattern {_quoted(self.text)}: {why} (at position {self.pos})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Fragment:
        if self.text.startswith("^"):
            self.pos = 1
        body = self.alternation()
        if self.peek() == "$" and self.pos == len(self.text) - 1:
            self.pos += 1
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {_quoted(self.peek())}")
        return body

    def alternation(self) -> Fragment:
        options = [self.concatenation()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.concatenation())
        if len(options) == 1:
            return options[0]
        start, end = self.nfa.state(), self.nfa.state()
        for entry, exit_ in options:
            self.nfa.empty[start].append(entry)
            self.nfa.empty[exit_].append(end)
        return start, end

    def concatenation(self) -> Fragment:
        start = end = self.nfa.state()
        while self.peek() not in ("", "|", ")") and not (self.peek() == "$" and self.pos == len(self.text) - 1):
            entry, exit_ = self.repeat()
            self.nfa.empty[end].append(entry)
            end = exit_
        return start, end

    def repeat(self) -> Fragment:
        begin = self.pos
        fragment = self.atom()
        source = self.text[begin : self.pos]  # re-parsed for each copy a bounded repeat needs
        while self.peek() in ("*", "+", "?", "{"):
            low, high = self.bounds()
            fragment = self.repeated(fragment, source, low, high)
            source = self.text[begin : self.pos]
        return fragment

    def bounds(self) -> tuple[int, int | None]:
        ch = self.peek()
        self.pos += 1
        if ch in "*+?":
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        close = self.text.find("}", self.pos)
        if close < 0:
            raise self.fail("'{' without '}'")
        inside, self.pos = self.text[self.pos : close], close + 1
        low_text, comma, high_text = inside.partition(",")
        try:
            low = int(low_text) if low_text else 0
            high = None if comma and not high_text else int(high_text) if comma else low
        except ValueError:
            raise self.fail(f"bad repeat {{{inside}}}") from None
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise self.fail(f"repeat {{{inside}}} out of range (0 to {MAX_REPEAT}, low <= high)")
        return low, high

    def copy(self, source: str) -> Fragment:
        return _Parser(source, self.nfa).repeat()

    def repeated(self, fragment: Fragment, source: str, low: int, high: int | None) -> Fragment:
        """`fragment` then copies of `source` (the text it came from) for x{low,high}."""
        nfa = self.nfa
        parts = [fragment] + [self.copy(source) for _ in range(max(low, 1) - 1)]
        start = end = nfa.state()
        if low == 0:  # optional from the first copy on
            parts = []
        for entry, exit_ in parts:
            nfa.empty[end].append(entry)
            end = exit_
        if high is None:  # then any number more: a loop
            entry, exit_ = fragment if low == 0 else self.copy(source)
            loop_end = nfa.state()
            nfa.empty[end].append(loop_end)
            nfa.empty[loop_end].append(entry)
            nfa.empty[exit_].append(loop_end)
            return start, loop_end
        optional = [fragment] if low == 0 and high > 0 else []
        optional += [self.copy(source) for _ in range(high - max(low, 0) - len(optional))]
        done = nfa.state()
        nfa.empty[end].append(done)
        for entry, exit_ in optional:
            nfa.empty[end].append(entry)
            nfa.empty[exit_].append(done)
            end = exit_
        return start, done

    def atom(self) -> Fragment:
        ch = self.peek()
        if ch == "(":
            self.pos += 1
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.fail("only plain groups ( ) and (?: ) are supported")
            inner = self.alternation()
            if self.peek() != ")":
                raise self.fail("'(' without ')'")
            self.pos += 1
            return inner
        if ch == "[":
            return self.single(self.char_class())
        if ch == ".":
            self.pos += 1
            return self.single(DIGITS)
        if ch == "\\":
            escaped = self.text[self.pos + 1 : self.pos + 2]
            self.pos += 2
            if escaped == "d":
                return self.single(DIGITS)
            if escaped.isdigit() and escaped != "0":
                raise self.fail("back-references are not supported")
            raise self.fail(f"'\\{escaped}' is not a digit class (only \\d is)")
        if ch.isdigit() and ch.isascii():
            self.pos += 1
            return self.single(frozenset([int(ch)]))
        if ch in ("*", "+", "?", "{"):
            raise self.fail(f"{_quoted(ch)} repeats nothing")
        raise self.fail(f"{_quoted(ch)} is not a digit: a reading holds the digits 0-9 only")

    def char_class(self) -> frozenset[int]:
        self.pos += 1
        negate = self.peek() == "^"
        self.pos += negate
        chosen: set[int] = set()
        while self.peek() not in ("]", ""):
            if self.text.startswith("\\d", self.pos):
                chosen |= DIGITS
                self.pos += 2
                continue
            first = self.peek()
            if not (first.isdigit() and first.isascii()):
                raise self.fail(f"{_quoted(first)} in a class is not a digit")
            if self.text[self.pos + 1 : self.pos + 2] == "-" and self.text[self.pos + 2 : self.pos + 3] not in (
                "]",
                "",
            ):
                last = self.text[self.pos + 2]
                if not (last.isdigit() and last.isascii()) or last < first:
                    raise self.fail(f"bad range {first}-{last}")
                chosen |= set(range(int(first), int(last) + 1))
                self.pos += 3
            else:
                chosen.add(int(first))
                self.pos += 1
        if self.peek() != "]":
            raise self.fail("'[' without ']'")
        self.pos += 1
        return frozenset(DIGITS - chosen if negate else chosen)

    def single(self, digits: frozenset[int]) -> Fragment:
        start, end = self.nfa.state(), self.nfa.state()
        self.nfa.moves[start].append((digits, end))
        return start, end


# --- NFA -> DFA --------------------------------------------------------------------------------


def _closure(nfa: _Nfa, states: set[int]) -> frozenset[int]:
    todo, seen = list(states), set(states)
    while todo:
        for nxt in nfa.empty[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def _determinise(nfa: _Nfa, start: int, end: int, text: str) -> DigitPattern:
    first = _closure(nfa, {start})
    index, todo, rows, accept = {first: 0}, [first], [], []
    while todo:
        current = todo.pop(0)
        row = np.full(10, -1, np.int32)
        for d in range(10):
            targets = {target for s in current for digits, target in nfa.moves[s] if d in digits}
            if not targets:
                continue
            nxt = _closure(nfa, targets)
            if nxt not in index:
                if len(index) >= MAX_STATES:
                    raise PatternError(f"the {text} is too complex (over {MAX_STATES} states)")
                index[nxt] = len(index)
                todo.append(nxt)
            row[d] = index[nxt]
        rows.append(row)
        accept.append(end in current)
    return _pruned(np.array(rows, np.int32), np.array(accept), text)


def _pruned(step: np.ndarray, accept: np.ndarray, text: str) -> DigitPattern:
    """Drop the states from which no match can be reached (renumbered, start kept at 0); no
    states at all when the start is one of them."""
    live = accept.copy()
    while True:
        reach = live | np.array([bool(live[row[row >= 0]].any()) for row in step])
        if (reach == live).all():
            break
        live = reach
    if not live[0]:
        return DigitPattern(np.zeros((0, 10), np.int32), np.zeros(0, bool), text)
    new = np.full(len(live), -1, np.int32)
    new[live] = np.arange(int(live.sum()), dtype=np.int32)
    kept = step[live]
    kept = np.where(kept >= 0, new[np.maximum(kept, 0)], -1).astype(np.int32)
    return DigitPattern(kept, accept[live], text)

"""--digits and --pattern as automata (digitrec.read.pattern), checked against Python's own `re`,
and the decoders that step them: the cut-up pieces' Viterbi and the line reader's CTC columns."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest

from digitrec.read.pattern import PatternError, compile_pattern, constraint, exactly, n_digits

PATTERNS = [
    r"\d{4}",
    r"19\d\d|20[0-2]\d",
    r"[1-9]\d*",
    r"(12)+",
    r"0?7{2,3}",
    r"^\d{3}(\d\d)?$",
    r"[^0]{1,2}",
    r"(1|23)*4",
    r"5{0}6",
    r".{0,3}",
    r"(?:1|2){2}",
    r"\d{2,}",
    r"[0-35-9]",
]


def _strings(n: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    made = ["".join(rng.choice("0123456789") for _ in range(rng.randint(0, 6))) for _ in range(n)]
    return made + ["1999", "2024", "12", "1212", "077", "0777", "7777", "1234", "232314", "6", "56", "4"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_automaton_accepts_what_re_fullmatch_accepts(pattern):
    automaton = compile_pattern(pattern)
    wrong = [s for s in _strings() if automaton.matches(s) != bool(re.fullmatch(pattern, s))]
    assert wrong == []


def test_digits_and_pattern_together_and_exact_strings():
    both = constraint(4, r"[1-9]\d*")
    assert both.matches("1234") and not both.matches("0123") and not both.matches("123")
    assert constraint() is None
    assert n_digits(3).matches("007") and not n_digits(3).matches("07")
    assert exactly("417").matches("417") and not exactly("417").matches("41")
    # Every state can still reach a match: a dead end is -1, never a state that goes nowhere.
    assert (compile_pattern(r"19\d\d|20[0-2]\d").step[0] >= 0).sum() == 2


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"a\d", "'a' is not a digit"),
        (r"\w+", "only \\d is"),
        ("(12", "without ')'"),
        ("[9-1]", "bad range"),
        ("(?=1)2", "only plain groups"),
        ("*1", "repeats nothing"),
        (r"\d{3,2}", "out of range"),
        ("1{100}", "out of range"),
        (r"(\d)\1", "back-references"),
        ("", "matches only an empty reading"),  # `read --pattern ''`: refused once, not per file
        ("^$", "matches only an empty reading"),
        ("()", "matches only an empty reading"),
    ],
)
def test_patterns_it_cannot_use_are_refused_with_the_reason(pattern, why):
    with pytest.raises(PatternError, match=re.escape(why)):
        compile_pattern(pattern)


def test_impossible_combinations_and_blown_up_patterns_are_refused():
    with pytest.raises(PatternError, match="no number can be 3 digits and pattern"):
        constraint(3, r"\d{4}")
    with pytest.raises(PatternError, match="between 1 and"):
        constraint(0)
    # The classic exponential DFA: refused in well under a second, not built for minutes.
    with pytest.raises(PatternError, match="too complex"):
        compile_pattern(r"(0|1)*0(0|1){20}")


def _collapse(columns) -> str:
    out, previous = [], 10
    for k in columns:
        if k != 10 and k != previous:
            out.append(str(k))
        previous = k
    return "".join(out)


def test_constrained_ctc_decoding_is_the_best_matching_path_and_plain_when_unconstrained():
    """Against brute force over every column path (11^4) for random columns: the decoder's
    answer is the best single path whose digits match, not the best path filtered."""
    from digitrec.read.decode import ANY_DIGITS
    from digitrec.read.line_reader import constrained_decode, greedy_decode

    rng = np.random.default_rng(1)
    pattern = compile_pattern(r"[1-9]\d")
    paths = list(itertools.product(range(11), repeat=4))
    for _ in range(20):
        log_probs = np.log(rng.dirichlet(np.full(11, 0.3), size=4))
        best = max(
            (
                (sum(log_probs[t, k] for t, k in enumerate(p)), _collapse(p))
                for p in paths
                if pattern.matches(_collapse(p))
            ),
        )
        text, score = constrained_decode(log_probs, pattern)
        assert text == best[1] and score == pytest.approx(best[0])
        assert constrained_decode(log_probs, ANY_DIGITS) == pytest.approx(greedy_decode(log_probs))
    assert constrained_decode(np.log(np.full((2, 11), 1 / 11)), n_digits(3)) == ("", -np.inf)


def test_best_path_keeps_to_the_pattern_while_it_searches():
    """The atoms of test_read's test_best_path_can_be_held_to_a_reading: unconstrained the path
    reads '17'; with 3 digits it reads '417' (a filter on the best path would find nothing); a
    pattern can change a digit as well as the count."""
    from digitrec.preprocess.segment import Atom, TextLine
    from digitrec.read.decode import best_path

    atoms = [Atom(x, 0, 8, 20, np.ones((20, 8), bool)) for x in (0, 10, 20)]
    line = TextLine(atoms, 20.0)
    scores = {g: np.full(10, -5.0) for g in [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3), (0, 3)]}
    scores[(0, 2)][1], scores[(2, 3)][7] = -0.1, -0.1
    scores[(0, 1)][4], scores[(1, 2)][1] = -1.0, -1.0
    assert best_path(line, scores)[1] == [(0, 2, 1), (2, 3, 7)]
    total, path = best_path(line, scores, pattern=n_digits(3))
    assert path == [(0, 1, 4), (1, 2, 1), (2, 3, 7)] and total == pytest.approx(-2.1)
    total, path = best_path(line, scores, pattern=compile_pattern(r"1[0-6]"))
    assert [d for _, _, d in path] == [1, 0] and total == pytest.approx(-5.1)
    assert best_path(line, scores, pattern=n_digits(4)) == (-np.inf, [])


def test_the_error_quotes_the_pattern_as_it_was_typed():
    """Not its repr: `\\d{3,2}` typed in a shell is shown with one backslash, as the user wrote it."""
    with pytest.raises(PatternError) as bad:
        compile_pattern(r"\d{3,2}")
    assert str(bad.value).startswith(r"cannot use the pattern '\d{3,2}': ")
    with pytest.raises(PatternError) as empty:
        compile_pattern(r"\d{0}")
    assert r"the pattern '\d{0}' matches only an empty reading" in str(empty.value)
    with pytest.raises(PatternError) as klass:
        compile_pattern(r"[\w]")
    assert str(klass.value).startswith("cannot use the pattern '[\\w]': '\\' in a class is not a digit")
    # a quote or an unprintable character: quoted as Python would, never raw on the terminal
    for pattern in ("1'2", "1\n2", "\x1b[31m1"):
        with pytest.raises(PatternError) as odd:
            compile_pattern(pattern)
        assert str(odd.value).startswith(f"cannot use the pattern {pattern!r}: ") and str(odd.value).isprintable()

"""The candidate digits of a segmented page: every run of consecutive atoms in a line that may be
one digit (`candidate_plan`), rendered MNIST-style (`render_candidates`) for the digit model and
the verifier. Cheap, no networks: the budget counts the plan before anything is rendered."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from digitrec.preprocess.digit import fit_and_centre
from digitrec.preprocess.segment import Segmentation, TextLine, render_group
from digitrec.read.budget import Plan, Run, no_deadline
from digitrec.read.params import DEFAULT_PARAMS, ReaderParams


def candidate_groups(line: TextLine, params: ReaderParams = DEFAULT_PARAMS) -> list[Run]:
    """The runs (i, j) of up to `params.max_atoms_per_digit` atoms of `line` that may be one
    digit: a run of several atoms no wider than `params.max_run_width` line heights."""
    atoms, n = line.atoms, len(line.atoms)
    groups = []
    for i in range(n):
        x0, x1 = atoms[i].x, atoms[i].x + atoms[i].w
        for j in range(i + 1, min(n, i + params.max_atoms_per_digit) + 1):
            x0, x1 = min(x0, atoms[j - 1].x), max(x1, atoms[j - 1].x + atoms[j - 1].w)
            if j > i + 1 and x1 - x0 > params.max_run_width * line.height:
                break
            groups.append((i, j))
    return groups


def candidate_plan(seg: Segmentation, params: ReaderParams = DEFAULT_PARAMS) -> Plan:
    """The candidate runs of atoms of every line (`candidate_groups`): cheap, no rendering."""
    return [candidate_groups(line, params) for line in seg.lines]


def render_candidates(
    seg: Segmentation, plan: Plan | None = None, deadline: Callable[[], None] = no_deadline
) -> tuple[Plan, np.ndarray]:
    """Every candidate run of atoms of every line (`plan`, default `candidate_plan(seg)`), rendered
    MNIST-style -> (runs per line, uint8 (N, 28, 28) images, line by line). The verifier is
    trained on exactly these renderings. `deadline` is called before each line."""
    plan = candidate_plan(seg) if plan is None else plan
    images = []
    for line, groups in zip(seg.lines, plan):
        deadline()
        images += [fit_and_centre(render_group(line.atoms[i:j], seg.ink, seg.stroke)) for i, j in groups]
    return plan, np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)

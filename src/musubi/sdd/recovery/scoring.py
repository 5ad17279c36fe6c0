"""From raw similarity to a link decision: normalise, propagate along code structure, select.

Scores are kept as a matrix ``{requirement: {file: score}}``. The steps, in order:

1. :func:`normalise_rows` divides each requirement's scores by its best one, so a long
   requirement and a short one are on the same 0..1 scale.
2. :func:`propagate` mixes in the best score of a file's structural neighbours (files it uses
   or that use it): ``(1 - λ)·s(r, f) + λ·max s(r, n)``. A data class used by the controller
   that matches a requirement is likely part of that requirement's implementation too.
3. :func:`standardise` turns each score into how far it stands out, as the mean of its z-score
   within the requirement's row and within the file's column. A file that matches *every*
   requirement a little (a utility) stands out nowhere; a file that matches one requirement
   much better than the others does.
4. A link is suggested where the standardised score reaches a threshold. Because step 3 is a
   z-score, the threshold means the same thing in every project ("this many standard
   deviations above the usual"), which is why it is not tuned per project. Each
   requirement's best file is kept as well: in a small project (a handful of files) no
   z-score can reach the threshold, yet the best match is still worth showing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["Matrix", "normalise_rows", "propagate", "select", "standardise"]

Matrix = dict[str, dict[str, float]]


def normalise_rows(matrix: Mapping[str, Mapping[str, float]]) -> Matrix:
    """Divide each row by its maximum (a row of zeros stays zero)."""
    out: Matrix = {}
    for row, cells in matrix.items():
        top = max(cells.values(), default=0.0)
        out[row] = {col: (value / top if top > 0 else 0.0) for col, value in cells.items()}
    return out


def propagate(
    matrix: Mapping[str, Mapping[str, float]],
    neighbours: Mapping[str, Iterable[str]],
    weight: float,
) -> tuple[Matrix, dict[str, dict[str, str]]]:
    """Mix each file's score with its best neighbour's; also return that neighbour.

    The second value maps ``requirement -> file -> neighbour`` for the cells where the
    neighbour's share is what lifted the score (used as evidence).
    """
    out: Matrix = {}
    via: dict[str, dict[str, str]] = {}
    for row, cells in matrix.items():
        new: dict[str, float] = {}
        row_via: dict[str, str] = {}
        for col, value in cells.items():
            best, best_name = 0.0, ""
            for name in neighbours.get(col, ()):
                score = cells.get(name, 0.0)
                if score > best:
                    best, best_name = score, name
            new[col] = (1.0 - weight) * value + weight * best
            if best_name and weight * best > (1.0 - weight) * value:
                row_via[col] = best_name
        out[row] = new
        via[row] = row_via
    return out, via


def _z(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values) if values else 0.0
    variance = sum((v - mean) ** 2 for v in values) / len(values) if values else 0.0
    return mean, math.sqrt(variance)


def standardise(matrix: Mapping[str, Mapping[str, float]], column_weight: float = 0.5) -> Matrix:
    """``(1 - w)·z_row + w·z_column`` for every cell (a constant row/column gives 0)."""
    rows = {row: _z(list(cells.values())) for row, cells in matrix.items()}
    columns: dict[str, list[float]] = {}
    for cells in matrix.values():
        for col, value in cells.items():
            columns.setdefault(col, []).append(value)
    cols = {col: _z(values) for col, values in columns.items()}
    out: Matrix = {}
    for row, cells in matrix.items():
        row_mean, row_sd = rows[row]
        out[row] = {}
        for col, value in cells.items():
            col_mean, col_sd = cols[col]
            z_row = (value - row_mean) / row_sd if row_sd > 0 else 0.0
            z_col = (value - col_mean) / col_sd if col_sd > 0 else 0.0
            out[row][col] = (1.0 - column_weight) * z_row + column_weight * z_col
    return out


def select(
    standardised: Mapping[str, Mapping[str, float]],
    support: Mapping[str, Mapping[str, float]],
    threshold: float,
    *,
    relative: float = 0.0,
    max_links: int | None = None,
) -> list[tuple[str, str]]:
    """Cells that reach ``threshold``, plus each row's best; all need ``support`` > 0.

    Per requirement, a cell must also reach ``relative`` times the row's best ``support``
    (the cut follows the row's own score distribution), and at most ``max_links`` cells of
    a row, best first, are kept: a z-score cut alone keeps a fixed *share* of the files, so
    its link count grows with the project while a requirement's real links do not.
    """
    out: list[tuple[str, str]] = []
    for row, cells in standardised.items():
        ranked = sorted(cells, key=lambda col: (-cells[col], col))
        top = max(support[row].values(), default=0.0)
        kept = 0
        for position, col in enumerate(ranked):
            if max_links is not None and kept >= max_links:
                break
            value, raw = cells[col], support[row][col]
            if raw <= 0:
                continue
            if position == 0 or (value >= threshold and raw >= relative * top):
                out.append((row, col))
                kept += 1
    return out

"""The one text-table format that the commands print (compare, significance, the gate):
columns two spaces apart, a rule of dashes under the header, cells as given, the columns
named in `right` right-aligned. (tabulate's "simple" format is this one, but it pads every
header by two more characters, which pushes compare's table past 100 columns.)"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]],
               right: Iterable[int] = ()) -> str:
    right = set(right)
    table = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(table[0]), line(["-" * w for w in widths]), *map(line, table[1:])])

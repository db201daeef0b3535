"""Make user text inert where it is shown: terminals, logs and spreadsheets.

Attack labels, class names, file names and messages quoting them are user text. In a
terminal, an ESC sequence in such text can recolour, retitle or rewrite the screen; in a
CSV file opened by a spreadsheet, a cell starting with ``=`` is a formula
(``=HYPERLINK(...)`` phones home). HTML is escaped by the templates themselves.
"""

from __future__ import annotations

import re

__all__ = ["csv_cell", "terminal_text"]

# C0 controls but tab and newline, DEL, and C1 controls (CSI is U+009B on its own).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: OWASP's list of characters that make a spreadsheet cell a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def terminal_text(text: str) -> str:
    """``text`` with every control character (ESC, CR, BEL, C1 codes …) but tab and
    newline shown as its escape (``\\x1b``), so that nothing a user wrote can drive the
    terminal or a log viewer."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def csv_cell(text: str) -> str:
    """``text`` safe as a spreadsheet cell: a leading ``=``, ``+``, ``-``, ``@``, tab or
    carriage return is neutralised by a single quote before it (OWASP's CSV-injection
    rule); other text is returned as is. Use it for text cells, not numbers."""
    text = str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text

"""Display tables for the page: great_tables (the Python port of R's gt) over frames of formatted text.

A result's tidy frame (raw names, full precision) is what tests and the CSV download use; this module
draws its second view, the table a clinician reads: clinical column labels, spanners over groups
("Severe CRS, N = 6"), indented levels under their variable, the test named once in a footnote, the
per-model facts once in a source note. Every table scrolls in its own frame with its first column kept
in view, so nothing is cut off at any width, and a long listing folds behind a summary line.

Cells must arrive as text (`helpers.fmt` makes it): `table()` refuses booleans, NaN, infinities,
e-notation and code-style column names, so a slip fails loudly in the notebook rather than on the page.
"""
from __future__ import annotations

import html as _html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

CODE_HEADER = re.compile(r"^([a-z0-9]+_[a-z0-9_]+|or|hr|term|p|n_\w+|ci|se|coef)$")
BAD_CELL = re.compile(r"^(True|False|nan|NaN|inf|-inf|Inf|-Inf|None|<NA>|NaT)$"
                      r"|(?<![\w.])[-+]?\d+(\.\d+)?[eE][+-]?\d+(?![\w.])")  # e-notation, not inside a hash
# Kept in view while the frame scrolls; `#ID` is replaced by the table's id.
FRAME_CSS = """
#ID .gt_table { margin-left: 0 !important; }
#ID .gt_col_heading, #ID .gt_row { padding: 0.35em 0.65em; }
#ID .gt_row { vertical-align: top; font-variant-numeric: tabular-nums; }
#ID .gt_table tr > :first-child, #ID .gt_stub, #ID .gt_stubhead {
  position: sticky; left: 0; z-index: 1; background: #fff; }
"""


@dataclass(frozen=True, repr=False)
class Table:
    """A display table: its HTML for the page and the frame of formatted text it was drawn from."""

    id: str
    html: str
    frame: pd.DataFrame

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<table {self.id}: {len(self.frame)} rows>"


def check_display(df: pd.DataFrame, id: str) -> None:
    """Refuse what a reader must never see: code-style headers, booleans, NaN/inf, e-notation, non-text cells."""
    problems = [f"column '{c}' looks like a code name" for c in df.columns if CODE_HEADER.match(str(c))]
    for col in df.columns:
        for i, v in enumerate(df[col]):
            if not isinstance(v, str):
                problems.append(f"column '{col}', row {i + 1}: {type(v).__name__} {v!r} is not formatted text")
            elif BAD_CELL.search(v.strip()):
                problems.append(f"column '{col}', row {i + 1}: '{v}' is not fit to print")
    if problems:
        raise ValueError(f"display table '{id}': " + "; ".join(problems[:6])
                         + (f" and {len(problems) - 6} more" if len(problems) > 6 else ""))


def table(df: pd.DataFrame, id: str, *, title: str | None = None, stub: str | None = None,
          indent: Iterable[int] = (), groups: str | None = None,
          spanners: Mapping[str, Sequence[str]] | None = None,
          footnotes: Mapping[str, Sequence[str]] | None = None, notes: Sequence[str] = (),
          collapse_after: int | None = None, align_left: Sequence[str] = ()) -> Table:
    """A great_tables table of formatted text: `stub` column first and kept in view, `indent` row positions
    indented under their variable, `groups` a column of row-group labels, `spanners` {label: columns},
    `footnotes` {text: columns whose label it marks}, `notes` source notes (method, per-model facts),
    and a fold behind a summary line beyond `collapse_after` rows."""
    from great_tables import GT, loc, style

    body = df.reset_index(drop=True)
    check_display(body, id)
    gt = GT(body, id=id, rowname_col=stub, groupname_col=groups)
    if stub:
        gt = gt.tab_stubhead(label=stub)  # the stub column keeps its header, as gtsummary's "Characteristic"
    if indent and stub:
        gt = gt.tab_stub_indent(rows=list(indent), indent=2)
    for label, cols in (spanners or {}).items():
        gt = gt.tab_spanner(label=label, columns=list(cols))
    for text, cols in (footnotes or {}).items():
        gt = gt.tab_footnote(text, locations=loc.column_labels(columns=list(cols)))
    for note in notes:
        gt = gt.tab_source_note(note)
    if title:
        gt = gt.tab_header(title=title)
    numeric = [c for c in body.columns if c not in (stub, groups, *align_left)]
    gt = (gt.cols_align("left", columns=[c for c in body.columns if c not in numeric])
          .cols_align("center", columns=numeric)
          .tab_style(style.text(whitespace="nowrap"), loc.body(columns=numeric))
          .tab_options(table_font_size="0.88em", container_overflow_x="auto", table_width="auto",
                       column_labels_font_weight="bold", source_notes_font_size="0.85em",
                       data_row_padding="0.3em")
          .opt_css(FRAME_CSS.replace("#ID", f"#{id}")))
    markup = f'<div class="cart-table" style="max-width: 100%; overflow-x: auto;">{gt.as_raw_html()}</div>'
    if collapse_after is not None and len(body) > collapse_after:
        markup = (f"<details class=\"cart-listing\"><summary>Show the table ({len(body):,} rows)</summary>"
                  f"{markup}</details>")
    return Table(id=id, html=markup, frame=body)


MAX_LISTED = 60  # rows of a per-patient listing on the page: thousands are unreadable and slow to build


def listing(df: pd.DataFrame, id: str, *, total: int | None = None, full_list: str | None = None,
            **kwargs) -> Table:
    """A per-patient listing: folded behind its summary line beyond 12 rows (first column kept in view) and cut
    to its first MAX_LISTED rows, with a note saying so (`total`: the rows before a caller's own cut;
    `full_list`: where every row is, e.g. the section's CSV download)."""
    total = len(df) if total is None else total
    if total > MAX_LISTED:
        df = df.head(MAX_LISTED)
        kwargs["notes"] = [*kwargs.get("notes", ()), f"The first {MAX_LISTED} of {total:,} rows are listed"
                           + (f"; {full_list}." if full_list else ".")]
    kwargs.setdefault("collapse_after", 12)
    return table(df, id, **kwargs)


def escape(text: str) -> str:
    """Text safe inside HTML."""
    return _html.escape(text, quote=False)

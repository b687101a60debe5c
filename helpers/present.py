"""Presentation: the data banner every chapter opens with, CSV downloads, and number formatting for prose."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown

from helpers.cohort import Cohort
from helpers.paths import resolve


def banner(cohort: Cohort) -> Markdown:
    """The statement at the top of every chapter: which cohort, and whether it is simulated."""
    if cohort.simulated:
        text = (f"**Simulated data.** Every number on this page comes from *{cohort.name}*, made by the book's "
                "own seeded simulator to match the published counts and directions. It is not patient data: "
                "it shows how the analysis is done, not what is true of patients.")
    else:
        text = (f"**Cohort:** *{cohort.name}* ({len(cohort.patients)} patients). Patients are shown only by "
                "pseudonymous sequence numbers (P01, P02, ... in the order of the patients file).")
    return Markdown(f"> {text}")


def export_csv(table: pd.DataFrame, name: str, tables_dir: str | Path, label: str | None = None) -> HTML:
    """Write `table` as `<tables_dir>/<name>.csv` (deterministic bytes) and return a download link for the page.

    The pipeline copies the folder next to the site, so the link resolves from a chapter's page.
    """
    from helpers.tables import to_csv_bytes

    folder = resolve(tables_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.csv").write_bytes(to_csv_bytes(table))
    text = label or f"Download this table as CSV ({name}.csv)"
    return HTML(f'<p><a href="../tables/{name}.csv" download>{text}</a></p>')


def pct(k: int, n: int, digits: int = 1) -> str:
    """'16/24 (66.7%)'."""
    return f"{k}/{n} ({100 * k / n:.{digits}f}%)" if n else f"{k}/{n}"


def skipped(what: str, needs: str) -> Markdown:
    """A visible note that an analysis was skipped because its input is absent from this cohort."""
    return Markdown(f"> **Skipped: {what}.** This cohort has no {needs}; see the data contract page for "
                    "what to add.")


def show(table: pd.DataFrame, name: str, precision: int = 3) -> HTML:
    """A table as HTML without its index and with a fixed id, so re-execution gives identical output.

    (A pandas Styler's own repr carries random ids and a memory address, which nbval would flag.)
    """
    styler = (table.style.hide(axis="index").set_uuid(name).format(precision=precision, na_rep="")
              .set_table_styles(TABLE_STYLES))
    return HTML(styler.to_html())


# Readable tables everywhere (site, JupyterLab): padding, light rules, numbers in tabular figures.
TABLE_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0 1em 0;"},
    {"selector": "th", "props": "padding: 0.35em 0.7em; text-align: left; border-bottom: 2px solid #888; "
                                "vertical-align: bottom;"},
    {"selector": "td", "props": "padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; vertical-align: top; "
                                "font-variant-numeric: tabular-nums;"},
]

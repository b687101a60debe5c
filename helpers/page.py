"""The context every chapter section works in: the cohort, its derived patient table, where CSVs go.

A chapter opens its page once, after its `parameters` cell:

    page = open_page(cohort, tables_dir, landmark_day=landmark_day)
    page.header()

and passes `page` to each section call. Nothing here is global: the page is an ordinary argument,
so a section can be called from a test with a hand-built cohort.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import pandas as pd
from IPython.display import HTML

from helpers.cohort import Cohort, load_cohort
from helpers.paths import PROJECT_ROOT, resolve
from helpers.sections import Shown


@dataclass
class Page:
    """One chapter's cohort, its settings and parameters, and the folder its CSV downloads go to."""

    data: Cohort
    tables_dir: Path
    source: str = ""
    params: dict = field(default_factory=dict)
    path: Path | None = None  # where the cohort was read from (never shown: `source` is what readers see)

    @cached_property
    def pt(self) -> pd.DataFrame:
        """The per-patient analysis table (helpers.derive), computed once per build and page."""
        from helpers import derive

        return derive.shared_patient_table(self.data)

    @property
    def settings(self):
        return self.data.settings

    def once(self, key: str, make: Callable[[], object]) -> object:
        """`make()` computed once per page: a result several sections show (graded scales, a model frame)."""
        store = self.__dict__.setdefault("_once", {})
        if key not in store:
            store[key] = make()
        return store[key]

    def download(self, frame: pd.DataFrame, name: str, label: str | None = None) -> HTML:
        """Write the tidy `frame` as `<tables_dir>/<name>.csv` (deterministic bytes) and return its link."""
        from helpers.tables import to_csv_bytes

        self.tables_dir.mkdir(parents=True, exist_ok=True)
        (self.tables_dir / f"{name}.csv").write_bytes(to_csv_bytes(frame))
        text = label or "Download the full result as CSV"
        return HTML(f'<p class="cart-download"><a href="../tables/{name}.csv" download>{text} '
                    f"({name}.csv)</a></p>")

    def header(self) -> Shown:
        """The banner at the top of every chapter: which cohort (by name only), simulated or not, the settings."""
        from helpers import report_text

        return Shown(report_text.banner(self), report_text.parameters_note(self))


def shown_source(cohort: str | Path) -> str:
    """The cohort as a reader may see it: a path inside the project, else only its folder or file name."""
    path = resolve(cohort)
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return path.name


def open_page(cohort: str | Path, tables_dir: str | Path, **params) -> Page:
    """Load (and validate) the cohort once and open a chapter page on it."""
    return Page(data=load_cohort(cohort), tables_dir=resolve(tables_dir), source=shown_source(cohort),
                params=params, path=resolve(cohort))

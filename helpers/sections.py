"""What a chapter section returns, and what it needs: `Shown`, `Skipped`, the `@needs` declaration, readiness.

A section function in a report module declares once the tables and columns it needs:

    @needs(tables=("daily",), columns={"daily": ("ice_score",)}, what="ICANS grading")
    def icans_incidence(page: Page) -> Shown: ...

Called on a cohort without them it returns a `Skipped` note that says what was skipped and why, so a
notebook cell is one call with no `if`. Every declaration is registered, and `readiness(cohort)` lists
them for `python -m helpers validate`: a cohort is "buildable" only if the build will succeed, and the
report of what each chapter will skip is the same one the pages show.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

TABLE_FILES = {"patients": "patients table (patients.csv)", "kinetics": "CAR-T kinetics table (kinetics.csv)",
               "daily": "daily clinical record (daily.csv)", "labs": "laboratory table (labs.csv)"}
# The modules whose sections the chapters call (imported by `readiness` so every declaration is known).
REPORT_MODULES: list[str] = [
    "helpers.cohort_report",
    "helpers.response_report",
    "helpers.survival_report",
    "helpers.kinetics_report",
    "helpers.crs_report",
    "helpers.toxicity_report",
    "helpers.persistence_report",
    "helpers.holdup_report",
]


@dataclass(frozen=True)
class Skipped:
    """A visible note that a section was skipped, and why (an input absent, or too few patients)."""

    what: str
    reason: str

    def markdown(self) -> str:
        return f"> **Skipped: {self.what}.** {self.reason[:1].upper()}{self.reason[1:]}"

    def _repr_markdown_(self) -> str:
        return self.markdown()


@dataclass
class Shown:
    """What one section shows, in order: Markdown strings, display tables, figures, download links.

    `data` is the tidy result behind it (tests read it; the CSV download is written from it)."""

    parts: list = field(default_factory=list)
    data: object = None

    def __init__(self, *parts, data: object = None):
        self.parts = [p for p in parts if p is not None]
        self.data = data

    def text(self) -> str:
        """The Markdown of the section (its sentences and notes), for tests and for other pages."""
        return "\n\n".join(p if isinstance(p, str) else p.markdown() for p in self.parts
                           if isinstance(p, (str, Skipped)))

    def tables(self) -> list:
        """The display tables of the section."""
        from helpers.display import Table

        return [p for p in self.parts if isinstance(p, Table)]

    def _ipython_display_(self) -> None:
        from IPython.display import Markdown, display

        for part in self.parts:
            if isinstance(part, str):
                display(Markdown(part))
            elif _is_figure(part):
                show_figure(part)
            else:
                display(part)


def _is_figure(obj: object) -> bool:
    return type(obj).__name__ == "Figure" and hasattr(obj, "savefig")


def show_figure(fig) -> None:
    """Display and close a figure as the inline backend shows one (a PNG, and "<Figure size ...>" as text), but
    not cropped when a layout engine already fits it to its canvas: finding the tight bounding box of every
    artist costs a fifth of the chapters' figure time."""
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure
    from IPython.display import display

    png = print_figure(fig, "png", bbox_inches=None if fig.get_layout_engine() is not None else "tight", base64=True)
    display({"image/png": png, "text/plain": repr(fig)}, raw=True)
    plt.close(fig)


@dataclass(frozen=True)
class Requirement:
    """One section's declared inputs."""

    section: str
    what: str
    tables: tuple[str, ...]
    columns: tuple[tuple[str, tuple[str, ...]], ...]


REGISTRY: dict[str, Requirement] = {}


def missing(cohort, tables: Sequence[str] = (), columns: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """Why `cohort` cannot feed a section (in the data manager's words), or None when it can."""
    absent = [TABLE_FILES.get(t, t) for t in tables if not cohort.has(t)]
    if absent:
        return f"this cohort has no {' and no '.join(absent)}"
    lacking = []
    for table, cols in (columns or {}).items():
        df = getattr(cohort, table, None)
        if df is None:
            lacking.append(TABLE_FILES.get(table, table))
            continue
        gone = [c for c in cols if c not in df.columns or not df[c].notna().any()]
        if gone:
            names = ", ".join(f"`{c}`" for c in gone)
            lacking.append(f"{names} in the {TABLE_FILES.get(table, table)}")
    return f"this cohort has no values for {'; '.join(lacking)}" if lacking else None


def needs(tables: Sequence[str] = (), columns: Mapping[str, Sequence[str]] | None = None,
          what: str = "") -> Callable:
    """Declare a section's inputs; the section returns `Skipped` when its cohort lacks one."""
    def wrap(func: Callable) -> Callable:
        name = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__name__}"
        REGISTRY[name] = Requirement(name, what or func.__name__.replace("_", " "), tuple(tables),
                                     tuple((t, tuple(c)) for t, c in (columns or {}).items()))

        @functools.wraps(func)
        def run(page, *args, **kwargs):
            why = missing(page.data, tables, columns)
            return Skipped(REGISTRY[name].what, why + ".") if why else func(page, *args, **kwargs)

        run.requirement = REGISTRY[name]
        return run
    return wrap


def readiness(cohort) -> pd.DataFrame:
    """Every registered section with what it needs and whether `cohort` has it (for `validate`)."""
    for module in REPORT_MODULES:
        importlib.import_module(module)
    rows = []
    for req in REGISTRY.values():
        why = missing(cohort, req.tables, dict(req.columns))
        rows.append({"section": req.section, "what": req.what, "ready": why is None, "reason": why or ""})
    return pd.DataFrame(rows, columns=["section", "what", "ready", "reason"])

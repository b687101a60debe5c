"""Provenance for the reproducibility page: package versions, the cohort's content hash and (when simulated) seed."""
from __future__ import annotations

import platform
from importlib import metadata

import pandas as pd

from helpers.build import cohort_hash
from helpers.cohort import Cohort
from helpers.paths import resolve

KEY_PACKAGES = ("pandas", "numpy", "scipy", "lifelines", "statsmodels", "firthmodels", "tableone", "pandera",
                "matplotlib", "seaborn", "scikit-learn", "papermill", "nbval", "jupyter-book", "myst-nb")


def package_versions(packages: tuple[str, ...] = KEY_PACKAGES) -> pd.DataFrame:
    """Installed versions of the packages the analyses depend on, plus Python itself."""
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in packages:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def cohort_provenance(cohort_path: str, cohort: Cohort) -> pd.DataFrame:
    """What identifies the cohort this site was built from: name, origin (simulator seed only when simulated),
    size, tables and the SHA-256 of its files. No build time: the same inputs give the same page."""
    origin = (f"the book's simulator, seed {cohort.seed}" if cohort.simulated
              else (cohort.source or "as supplied by the centre"))
    rows = [("Cohort", cohort.name), ("Origin", origin),
            ("Infused patients", f"{len(cohort.patients):,}"),
            ("Tables present", ", ".join(t for t in ("patients", "kinetics", "daily", "labs") if cohort.has(t)
                                          or t == "patients")),
            ("Content hash (SHA-256 of the cohort files)", cohort_hash(resolve(cohort_path)))]
    return pd.DataFrame(rows, columns=["item", "value"])

"""Provenance for the reproducibility page: package versions, the cohort's content hash, seed, build time."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
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
    """What identifies the cohort this site was built from: name, simulated, seed, SHA-256 of its files."""
    rows = [("cohort", cohort.name), ("simulated", "yes" if cohort.simulated else "no"),
            ("simulator seed", "" if cohort.seed is None else str(cohort.seed)),
            ("patients", str(len(cohort.patients))),
            ("tables present", ", ".join(t for t in ("kinetics", "daily", "labs") if cohort.has(t)) or "patients only"),
            ("content hash (SHA-256 of the cohort files)", cohort_hash(resolve(cohort_path))),
            ("executed (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"))]
    return pd.DataFrame(rows, columns=["item", "value"])

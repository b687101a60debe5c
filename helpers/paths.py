"""Project paths, resolved from the package location so notebooks behave alike everywhere."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parents[1]
DATA_DIR: Path = PROJECT_ROOT / "data"
SHIPPED_COHORT: Path = DATA_DIR / "simulated"
NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"
BOOK_DIR: Path = PROJECT_ROOT / "book"
BUILD_DIR: Path = PROJECT_ROOT / "_build"
SHARED_CACHE: Path = BUILD_DIR / ".cache"  # the shipped cohort's executed notebooks (nothing private)
CACHE_ENV = "HELPERS_CACHE_DIR"  # set by the pipeline while it builds a centre's own cohort
CHECKING_ENV = "HELPERS_COHORT_CHECKING"  # set by the pipeline: its kernels may use the cohort it stores before
# its held-back checks end (helpers.cohort.Checks; nothing is published unless they pass)


def resolve(path: str | Path) -> Path:
    """Resolve a path given relative to the project root (absolute paths pass through)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()


def cache_dir() -> Path:
    """Where derived data (the loaded-cohort pickle) is cached: the build's private folder when it set one."""
    private = os.environ.get(CACHE_ENV)
    return Path(private) if private else SHARED_CACHE


def private_cache(out: str | Path) -> Path:
    """The private cache of a site built from a centre's own cohort: `<out>.cache` beside the site folder.

    It holds that cohort's executed notebooks, tables and logs (patient-level data), so it is never
    shared with other builds of the clone and never published; `python -m helpers clean --out <out>`
    removes it.
    """
    out = resolve(out)
    return out.with_name(out.name + ".cache")

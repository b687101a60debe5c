"""Project paths, resolved from the package location so notebooks behave alike everywhere."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parents[1]
DATA_DIR: Path = PROJECT_ROOT / "data"
SHIPPED_COHORT: Path = DATA_DIR / "simulated"
NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"
BOOK_DIR: Path = PROJECT_ROOT / "book"
BUILD_DIR: Path = PROJECT_ROOT / "_build"


def resolve(path: str | Path) -> Path:
    """Resolve a path given relative to the project root (absolute paths pass through)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()

"""Analysis helpers for the CD19 CAR-T B-ALL research book.

All analysis logic lives here; the notebooks only call these functions and tell the story.
"""
import sys as _sys

# jsonschema (imported by nbformat, papermill and Jupyter Book) compiles 38 grammars of the optional
# rfc3987-syntax package when it loads, 2 s in every build process, for an "iri" format check that no
# notebook or book schema uses; without the package jsonschema simply skips that check.
_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
del _sys

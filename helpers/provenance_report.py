"""The reproducibility page's sections: what the site was built from (cohort hash, origin) and the package versions."""
from __future__ import annotations

from helpers import display, provenance
from helpers.sections import Shown


def cohort(page) -> Shown:
    """The cohort this site was built from, identified by the hash of its files."""
    frame = provenance.cohort_provenance(str(page.path), page.data)
    table = display.table(frame.rename(columns={"item": "Item", "value": "Value"}), "provenance", stub="Item")
    return Shown(table, data=frame)


def environment(page) -> Shown:
    """Python and the versions of the packages that computed every number."""
    frame = provenance.package_versions()
    shown = frame.rename(columns={"package": "Package", "version": "Version"})
    return Shown(display.table(shown, "versions", stub="Package"), data=frame)

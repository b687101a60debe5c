"""Laboratory units: normalise a centre's spelling, then convert with pint to the contract's canonical unit.

Spelling is normalised before pint sees it (micro as `µ`, `μ`, `u` or `mc`; any letter case; `x10^9/L`,
`10E9/L`, `10*9/L`, `/mm3`, `K/uL`), so `µg/L`, `ug/l` and `x10^3/µL` are the same units as `ug/L`
and `10^3/uL`. pint then gives the factor between two units of the same dimension (`ng/mL` = `ug/L`,
`10^3/uL` = `10^9/L`, `g/dL` = 10 `g/L`). A mass concentration converts to a molar one only through the
analyte's molar mass (`contract.MOLAR_MASS_G_PER_MOL`, e.g. creatinine mg/dL -> umol/L x 88.4).
An international unit (IU) is not an enzyme unit (U) and never converts. D-dimer is reported in
fibrinogen-equivalent units (FEU) or D-dimer units (DDU): a bare `mg/L` is ambiguous and refused
unless cohort.yml declares `d_dimer_units` (see `convention_factor`).
"""
from __future__ import annotations

import re
import shutil
from functools import lru_cache

from helpers import contract



@lru_cache(maxsize=1)
def registry() -> "pint.UnitRegistry":
    """The unit registry, built on first use; pint's parsed definitions are cached (0.4 s -> 0.05 s a build)."""
    import pint

    from helpers.paths import SHARED_CACHE

    folder = SHARED_CACHE / "pint"  # pint's own definitions only: nothing of a cohort
    try:
        folder.mkdir(parents=True, exist_ok=True)
        reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True, cache_folder=folder)
    except OSError:  # a read-only checkout: parse the definitions each time
        reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    except Exception:  # a cache file half-written (pint writes in place; a build stopped meanwhile): parse
        shutil.rmtree(folder, ignore_errors=True)  # afresh, and let the next process write the cache again
        reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # IU (international units, bioassay-defined) must never equal U (enzyme units, umol/min).
    reg.define("international_unit = [bioassay] = IU")
    reg.define("cells = []")
    reg.define("copies = []")
    return reg


# D-dimer qualifiers: FEU (fibrinogen-equivalent units) and DDU (D-dimer units).
DDIMER_QUALIFIERS = ("FEU", "DDU")
# FEU mass is about twice the DDU mass (fibrinogen ~340 kDa vs D-dimer fragment ~195 kDa; laboratories
# and the ISTH SSC use the factor 2 by convention: Favaloro EJ et al., Semin Thromb Hemost 2015).
DDU_TO_FEU = 2.0

_TOKENS = {  # lower-case token -> pint spelling
    "l": "L", "dl": "dL", "ml": "mL", "ul": "uL", "nl": "nL", "mm3": "uL", "cmm": "uL",
    "g": "g", "mg": "mg", "ug": "ug", "ng": "ng", "pg": "pg",
    "mol": "mol", "mmol": "mmol", "umol": "umol", "nmol": "nmol", "pmol": "pmol",
    "u": "U", "iu": "IU", "miu": "mIU", "kiu": "kIU", "ku": "kU",
    "s": "s", "sec": "s", "secs": "s", "seconds": "s", "min": "min", "h": "h",
    "cells": "cells", "copies": "copies", "k": "1e3", "kg": "kg",
}


def spelling(unit: str) -> tuple[str, str]:
    """A unit as the centre wrote it -> (pint-ready expression, D-dimer qualifier or '').

    >>> spelling("x10^3/µL")
    ('1e3/uL', '')
    """
    text = str(unit).strip().replace("µ", "u").replace("μ", "u").replace("mcg", "ug").replace("mcmol", "umol")
    qualifier = ""
    for q in DDIMER_QUALIFIERS:
        if re.search(rf"\b{q}\b", text, flags=re.IGNORECASE):
            qualifier = q
            text = re.sub(rf"\(?\b{q}\b\)?", "", text, flags=re.IGNORECASE).strip()
    text = text.replace(" ", "")
    # powers of ten: x10^9, 10^9, 10E9, 10e9, 10*9, 10**9 -> 1e9
    text = re.sub(r"(?i)^(?:x|\*)?10(?:\^|\*\*|\*|e)(\d+)", r"1e\1", text)

    def token(match: re.Match) -> str:
        word = match.group(0)
        return _TOKENS.get(word.lower(), word)

    text = re.sub(r"(?<![0-9.])[A-Za-z]+[0-9]?", token, text)
    if text.startswith("/"):
        text = "1" + text
    return text, qualifier


@lru_cache(maxsize=4096)
def _quantity(expression: str):
    """The pint quantity of a normalised unit expression, or None when pint cannot read it."""
    if not expression:
        return None
    try:
        return registry().parse_expression(expression)
    except Exception:  # pint raises several error types for unknown or malformed units
        return None


@lru_cache(maxsize=4096)
def factor(analyte: str, found: str) -> float | None:
    """Factor taking a value of `analyte` in unit `found` to the canonical unit; None when not fixed.

    D-dimer qualifiers must match (FEU to FEU); a bare or mismatched one returns None here and is
    handled by `convention_factor`. Same spelling after normalisation -> 1.0.
    """
    canonical = contract.ANALYTES[analyte][0]
    for (name, unit), fixed in contract.UNIT_CONVERSIONS.items():  # the contract's conventional factors win
        if name == analyte and spelling(unit) == spelling(found):
            return fixed
    (src, q_src), (dst, q_dst) = spelling(found), spelling(canonical)
    convention = 1.0
    if (q_src, q_dst) == ("DDU", "FEU"):
        convention = DDU_TO_FEU
    elif q_src != q_dst:
        return None
    if re.search(r"(?<![A-Za-z])U(?![A-Za-z])", dst):  # enzyme activity: IU/L is the enzyme unit U/L
        src = re.sub(r"(?<![A-Za-z])IU(?![A-Za-z])", "U", src)
    a, b = _quantity(src), _quantity(dst)
    if a is None or b is None:
        return None
    ratio = a / b
    if not ratio.dimensionless:
        mass = contract.MOLAR_MASS_G_PER_MOL.get(analyte)
        if mass is None:
            return None
        molar = registry().Quantity(mass, "g/mol")
        ratio = ratio / molar if (ratio / molar).dimensionless else ratio * molar
        if not ratio.dimensionless:
            return None
    return float(f"{ratio.to('dimensionless').magnitude * convention:.12g}")


def convention_factor(analyte: str, found: str, declared: str | None) -> float | None:
    """Factor for a D-dimer value whose unit lacks FEU/DDU, under the cohort's declared convention."""
    if analyte != "d_dimer" or declared is None:
        return None
    base, qualifier = spelling(found)
    if qualifier:
        return None
    value = factor(analyte, f"{found} {declared}")
    return value


def is_ambiguous(analyte: str, found: str) -> bool:
    """True for a D-dimer unit that converts once FEU or DDU is known (e.g. 'mg/L' without a qualifier)."""
    if analyte != "d_dimer" or spelling(found)[1]:
        return False
    return any(factor(analyte, f"{found} {q}") is not None for q in DDIMER_QUALIFIERS)


def same_unit(a: str, b: str) -> bool:
    """True when two spellings name the same unit (factor exactly 1, same qualifier)."""
    (x, qx), (y, qy) = spelling(a), spelling(b)
    if (x, qx) == (y, qy):
        return True  # same spelling once normalised: no need for the registry
    qa, qb = _quantity(x), _quantity(y)
    if qx != qy or qa is None or qb is None:
        return x == y and qx == qy
    ratio = qa / qb
    return bool(ratio.dimensionless and abs(ratio.to("dimensionless").magnitude - 1) < 1e-12)

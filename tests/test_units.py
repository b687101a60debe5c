"""Unit spellings and conversions (pint), against the published conversion factors."""
from __future__ import annotations

import pytest

from helpers import units


@pytest.mark.parametrize("analyte, found, factor", [
    # same unit, other spelling: micro as u/µ/μ/mc, letter case, powers of ten
    ("ferritin", "µg/L", 1.0), ("ferritin", "ug/l", 1.0), ("ferritin", "mcg/L", 1.0), ("ferritin", "ng/ml", 1.0),
    ("platelets", "x10^3/µL", 1.0), ("platelets", "10^3/uL", 1.0), ("platelets", "K/uL", 1.0),
    ("platelets", "10E9/L", 1.0), ("wbc", "x10*9/l", 1.0), ("il6", "pg/ml", 1.0), ("pt", "sec", 1.0),
    ("alt", "IU/L", 1.0),  # enzyme activity: IU/L is the enzyme unit U/L
    # fixed factors: mass concentration
    ("crp", "mg/dL", 10.0), ("hemoglobin", "g/dL", 10.0), ("fibrinogen", "mg/dL", 0.01), ("wbc", "/mm3", 0.001),
    ("wbc", "cells/uL", 0.001), ("d_dimer", "ng/mL FEU", 0.001), ("d_dimer", "ug/mL FEU", 1.0),
    # mass -> molar through the molar mass: the conventional clinical factors 88.4 and 17.1
    ("creatinine", "mg/dL", 88.4), ("bilirubin", "mg/dl", 17.1),
    # D-dimer units doubled to fibrinogen-equivalent units (ISTH SSC convention)
    ("d_dimer", "ng/mL DDU", 0.002),
])
def test_conversion_factors(analyte, found, factor):
    assert units.factor(analyte, found) == pytest.approx(factor, rel=1e-9)


@pytest.mark.parametrize("analyte, found", [
    ("il6", "IU/mL"),      # bioassay units never equal a mass
    ("crp", "mmol/L"),     # no molar mass for a protein
    ("ferritin", "pmol/L"),
    ("d_dimer", "mg/L"),   # FEU or DDU unknown
    ("hemoglobin", "furlongs"),
])
def test_no_fixed_conversion(analyte, found):
    assert units.factor(analyte, found) is None


def test_d_dimer_without_qualifier_is_ambiguous_until_declared():
    assert units.is_ambiguous("d_dimer", "mg/L") and units.is_ambiguous("d_dimer", "ng/mL")
    assert not units.is_ambiguous("d_dimer", "mg/L FEU") and not units.is_ambiguous("crp", "mg/L")
    assert units.convention_factor("d_dimer", "mg/L", "FEU") == 1.0
    assert units.convention_factor("d_dimer", "mg/L", "DDU") == 2.0
    assert units.convention_factor("d_dimer", "ng/mL", "FEU") == pytest.approx(0.001)
    assert units.convention_factor("d_dimer", "mg/L", None) is None


def test_spelling_normalisation():
    assert units.spelling("x10^3/µL") == ("1e3/uL", "")
    assert units.spelling("mg/L FEU") == ("mg/L", "FEU")
    assert units.same_unit("ug/L", "ng/mL") and units.same_unit("10^9/L", "x10^3/µL")
    assert not units.same_unit("mg/dL", "mg/L")


def test_a_half_written_pint_cache_is_parsed_afresh(tmp_path, monkeypatch):
    # pint writes its cache in place: a build stopped meanwhile leaves an empty pickle, which made every
    # later build's registry fail to load, and every unit conversion with it
    from helpers import paths

    monkeypatch.setattr(paths, "SHARED_CACHE", tmp_path)
    units.registry.cache_clear()
    try:
        units.registry()  # writes the cache
        pickles = list((tmp_path / "pint").glob("*.pickle"))
        assert pickles
        for p in pickles:
            p.write_bytes(b"")
        units.registry.cache_clear()
        assert units.registry().Quantity(1, "mg/dL").to("g/L").magnitude == pytest.approx(0.01)
        assert not list((tmp_path / "pint").glob("*.pickle"))  # discarded, for the next process to write
    finally:
        units.registry.cache_clear()

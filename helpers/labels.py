"""One registry of what readers see instead of code names: columns, derived variables, analytes, scales, terms.

Every display table, axis and legend asks here (`label("bm_blasts_pct")` -> "Bone-marrow blasts, %"),
so a name is spelled once for the whole book. Analytes and contract columns fall back on the data
contract's own descriptions and units; a key that is nowhere registered is turned into words rather
than shown as code ("icu_days" -> "Icu days"), and `tests/test_labels.py` keeps the registry complete
for every contract column.
"""
from __future__ import annotations

from helpers import contract

# Patient-level variables (contract columns and derived ones), with the unit after a comma.
VARIABLES: dict[str, str] = {
    "patient_id": "Patient",
    "best_response": "Best response",
    "os_days": "Overall survival, days",
    "os_event": "Died",
    "age_years": "Age, years",
    "sex": "Sex",
    "bm_blasts_pct": "Bone-marrow blasts before lymphodepletion, %",
    "mrd_negative": "MRD-negative",
    "remission_day": "Day remission first documented",
    "pfs_days": "Progression-free survival, days",
    "pfs_event": "Relapse, progression or death",
    "ph_positive": "Philadelphia chromosome positive",
    "prior_lines": "Prior lines of therapy",
    "prior_allo_hsct": "Prior allogeneic HSCT",
    "extramedullary": "Extramedullary disease",
    "ldh_u_per_l": "LDH, U/L",
    "car_dose_per_kg": "CAR-T dose, \u00d710\u2076 cells/kg",
    "product_cd4_pct": "Product CD4+ T cells, %",
    "product_cd8_pct": "Product CD8+ T cells, %",
    "cd4_cd8_ratio": "Product CD4:CD8 ratio",
    "product_naive_pct": "Product naive T cells, %",
    "product_cm_pct": "Product central-memory T cells, %",
    "product_em_pct": "Product effector-memory T cells, %",
    "product_eff_pct": "Product effector T cells, %",
    "hsct_day": "Day of allogeneic HSCT after CAR-T",
    "crs_grade_reported": "CRS grade reported by the centre",
    "icans_grade_reported": "ICANS grade reported by the centre",
    "death_cause": "Cause of death",
    # derived (helpers.derive)
    "remission": "Remission (CR/CRi)",
    "severe_crs": "Severe CRS",
    "crs_any": "Any CRS",
    "crs_grade": "Maximum CRS grade",
    "peak_copies": "Peak CAR-T expansion, copies/\u00b5g DNA",
    "log10_peak": "Peak CAR-T expansion, log\u2081\u2080 copies/\u00b5g DNA",
    "log10_dose": "CAR-T dose, log\u2081\u2080 cells/kg",
    # daily record
    "day": "Day after infusion",
    "temp_max_c": "Highest temperature, \u00b0C",
    "sbp_min_mmhg": "Lowest systolic blood pressure, mmHg",
    "vasopressors": "Vasopressors (excluding vasopressin)",
    "vasopressin": "Vasopressin",
    "oxygen": "Oxygen support",
    "o2_flow_l_min": "Oxygen flow, L/min",
    "fio2_pct": "FiO\u2082, %",
    "tocilizumab": "Tocilizumab",
    "steroids": "Corticosteroids",
    "fever_other_cause": "Fever with another documented cause",
    "vasopressor_high_dose": "High-dose vasopressor",
    "norepi_equiv_ug_min": "Norepinephrine-equivalent dose, \u00b5g/min",
    "fluid_boluses": "Fluid boluses",
    "coag_replacement": "Coagulation factor replacement",
    "car_copies_per_ug_dna": "CAR transgene, copies/\u00b5g DNA",
}

# Analytes: short clinical name (the unit comes from the contract).
ANALYTE_NAMES: dict[str, str] = {
    "il6": "IL-6", "ifng": "IFN-\u03b3", "il10": "IL-10", "tnfa": "TNF-\u03b1", "crp": "CRP",
    "ferritin": "Ferritin", "procalcitonin": "Procalcitonin", "fibrinogen": "Fibrinogen",
    "d_dimer": "D-dimer", "pt": "Prothrombin time", "aptt": "aPTT", "alt": "ALT", "ast": "AST",
    "bilirubin": "Bilirubin", "creatinine": "Creatinine", "ldh": "LDH", "wbc": "White cells",
    "anc": "Neutrophils (ANC)", "alc": "Lymphocytes", "hemoglobin": "Haemoglobin",
    "platelets": "Platelets", "albumin": "Albumin", "sodium": "Sodium", "potassium": "Potassium",
    "cd19_b_cells": "CD19+ B cells", "igg": "IgG",
}

SCALES: dict[str, str] = {
    "astct": "ASTCT 2019", "lee2014": "Lee 2014", "ctcae5": "CTCAE v5.0", "penn": "Penn",
    "reported": "Reported by the centre",
}

ENDPOINTS: dict[str, str] = {
    "os": "Overall survival", "pfs": "Progression-free survival", "efs": "Event-free survival",
    "dor": "Duration of response", "cir": "Cumulative incidence of relapse",
    "nrm": "Non-relapse mortality",
}

RESPONSES: dict[str, str] = {
    "CR": "Complete remission (CR)", "CRi": "CR with incomplete count recovery (CRi)",
    "PR": "Partial remission (PR)", "NR": "No response (NR)", "NE": "Not evaluable (NE)",
}

DEATH_CAUSES: dict[str, str] = {
    "relapse": "Relapse or progression", "crs": "Cytokine release syndrome", "infection": "Infection",
    "other": "Other", "icans": "ICANS",
}

OXYGEN: dict[str, str] = {
    "none": "Room air", "low_flow": "Low-flow cannula", "high_flow": "High-flow cannula",
    "facemask": "Face mask", "nonrebreather": "Non-rebreather mask", "venturi": "Venturi mask",
    "cpap": "CPAP", "bipap": "BiPAP", "mechanical_ventilation": "Mechanical ventilation",
}

# Statistics and model vocabulary (tidy-frame column names of the analyses).
STATISTICS: dict[str, str] = {
    "hr": "HR", "or": "OR", "ci": "95% CI", "ci_low": "Lower 95% limit", "ci_high": "Upper 95% limit",
    "p_value": "p-value", "p_adj_bh": "q-value (BH)", "n": "N", "events": "Events", "epv": "Events per variable",
    "estimate": "Estimate", "median": "Median", "auc": "AUC", "term": "Variable", "method": "Method",
}


def analyte(code: str, unit: bool = True) -> str:
    """'IL-6, pg/mL' (or 'IL-6' without the unit) from the analyte code and the contract's canonical unit."""
    name = ANALYTE_NAMES.get(code) or contract.ANALYTES.get(code, ("", code))[1].capitalize() or words(code)
    canonical = contract.ANALYTES.get(code, ("", ""))[0]
    shown = canonical.replace("ug", "\u00b5g").replace("uL", "\u00b5L")
    return f"{name}, {shown}" if unit and canonical else name


def scale(code: str) -> str:
    """A CRS or ICANS scale by its name: 'astct' -> 'ASTCT 2019'."""
    return SCALES.get(code, words(code))


def words(key: str) -> str:
    """A last resort for an unregistered key: 'time_to_onset' -> 'Time to onset' (never shown as code)."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def label(key: str) -> str:
    """The reader's name for any registered key: variable, analyte, scale, endpoint, response, statistic."""
    for registry in (VARIABLES, SCALES, ENDPOINTS, STATISTICS):
        if key in registry:
            return registry[key]
    if key in contract.ANALYTES:
        return analyte(key)
    return words(key)


def value(column: str, code: object) -> str:
    """A category value in words: response, cause of death, oxygen device, scale; booleans as Yes/No."""
    if isinstance(code, bool) or str(code) in ("True", "False"):
        return "Yes" if str(code) == "True" else "No"
    table = {"best_response": RESPONSES, "death_cause": DEATH_CAUSES, "oxygen": OXYGEN,
             "scale": SCALES, "system": SCALES, "analyte": ANALYTE_NAMES}.get(column, {})
    return table.get(str(code), str(code))

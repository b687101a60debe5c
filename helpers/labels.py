"""One registry of what readers see instead of code names: columns, derived variables, analytes, scales, terms.

Every display table, axis and legend asks here (`label("bm_blasts_pct")` -> "Bone-marrow blasts, %"),
so a name is spelled once for the whole book. Analytes and contract columns fall back on the data
contract's own descriptions and units; a key that is nowhere registered is turned into words rather
than shown as code ("icu_days" -> "Icu days"), and `tests/test_labels.py` keeps the registry complete
for every contract column.
"""
from __future__ import annotations

import re

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
    # CRS course, treatment and severity markers (helpers.crs, helpers.crs_severity)
    "any_vasopressor": "Any vasopressor",
    "any_oxygen": "Any supplemental oxygen",
    "positive_pressure": "Positive-pressure ventilation (CPAP, BiPAP or invasive)",
    "pancytopenia": "Pancytopenia (CTCAE grade \u22653 in all three lineages, same day)",
    "onset_day": "Onset, day after infusion",
    "duration_days": "Duration, days",
    "day_of_max": "Day of maximum grade",
    "onset_to_max_days": "Days from onset to maximum grade",
    "crs_days": "Days with CRS",
    "episodes": "CRS episodes",
    "recurrence": "Recurrence (a second episode)",
    "max_grade": "Maximum CRS grade",
    "tocilizumab_from_onset": "Tocilizumab, first dose, days from CRS onset",
    "steroids_from_onset": "Corticosteroids, first dose, days from CRS onset",
    # toxicity (ICANS domains, haematotoxicity, B-cell aplasia)
    "ice_score": "ICE score (0-10)",
    "capd_score": "CAPD score",
    "consciousness": "Level of consciousness",
    "seizure": "Seizure",
    "motor_weakness": "Deep focal motor weakness",
    "cerebral_edema": "Cerebral oedema",
    "icans_other_cause": "Neurological findings with another documented cause",
    "lymphodepletion_day": "First day of lymphodepletion",
    "icans_any": "Any ICANS",
    "icans_grade": "Maximum ICANS grade",
    "icaht_grade": "Early ICAHT grade",
    "hematotox_score": "CAR-HEMATOTOX score",
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

# CRS groups of the severity comparison (helpers.crs_severity) and the rules that set a CRS grade (helpers.crs).
CRS_GROUPS: dict[str, str] = {
    "none": "No CRS", "mild": "Mild CRS", "severe": "Severe CRS", "mild/none": "Mild or no CRS",
}
CRS_DRIVERS: dict[str, str] = {
    "none": "no CRS sign", "fever": "fever",
    "hypotension:multi_pressor": "hypotension on several vasopressors",
    "hypotension:one_pressor": "hypotension on one vasopressor",
    "hypotension:vasopressin": "hypotension on vasopressin",
    "hypotension:no_pressor": "hypotension without vasopressors",
    "hypotension:high_dose_pressor": "hypotension on a high-dose vasopressor",
    "hypotension:low_dose_pressor": "hypotension on a low-dose vasopressor",
    "hypotension:fluid_boluses": "hypotension treated with several fluid boluses",
    "hypoxia:low_flow": "low-flow oxygen",
    "hypoxia:low_flow_over_limit": "nasal oxygen above 6 L/min",
    "hypoxia:high_flow_low_rate": "high-flow cannula at a low rate",
    "hypoxia:ventilator": "ventilator support", "hypoxia:fio2_high": "oxygen at FiO\u2082 \u226540%",
    "hypoxia:fio2_low": "oxygen at FiO\u2082 below 40%", "hypoxia:supplemental_o2": "any supplemental oxygen",
    "coagulopathy:replacement": "coagulopathy needing factor replacement",
}
CRS_GRADES: dict[int, str] = {0: "No CRS (grade 0)", 1: "Grade 1", 2: "Grade 2", 3: "Grade 3", 4: "Grade 4",
                              5: "Grade 5 (death from CRS)"}
# The unit an odds or hazard ratio of a model term is per (helpers.crs_report predictor tables).
EFFECT_UNITS: dict[str, str] = {
    "bm_blasts_pct": "per percentage point", "age_years": "per year", "log10_dose": "per 10-fold dose",
    "product_em_pct": "per percentage point", "cd4_cd8_ratio": "per unit", "ldh_u_per_l": "per U/L",
    "ph_positive": "yes vs no", "prior_allo_hsct": "yes vs no",
}
# Measures of helpers.crs_severity.roc_table.
ROC_MEASURES: dict[str, str] = {
    "AUC": "Area under the ROC curve (AUC)", "sensitivity at cut-off": "Sensitivity at the cut-off",
    "specificity at cut-off": "Specificity at the cut-off",
    "balanced accuracy of cut-off rule, apparent": "Balanced accuracy of the cut-off rule, in-sample",
    "optimism (bootstrap, cut-off re-chosen)": "Optimism (bootstrap, cut-off re-chosen)",
    "balanced accuracy of cut-off rule, optimism-corrected":
        "Balanced accuracy of the cut-off rule, optimism-corrected",
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

CONSCIOUSNESS: dict[str, str] = {
    "alert": "Alert", "awakens_spontaneously": "Awakens spontaneously", "awakens_to_voice": "Awakens to voice",
    "awakens_to_tactile": "Awakens only to tactile stimulus", "unarousable": "Unarousable, stupor or coma",
}
SEIZURES: dict[str, str] = {
    "none": "None", "rapidly_resolving": "Resolving rapidly (or non-convulsive, resolving with intervention)",
    "prolonged_or_repetitive": "Prolonged or repetitive without return to baseline",
}
EDEMA: dict[str, str] = {"none": "None", "focal": "Focal on imaging",
                         "diffuse": "Diffuse, posturing, papilloedema or Cushing's triad"}
SEX: dict[str, str] = {"F": "Female", "M": "Male"}

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
    shown = (canonical.replace("ug", "\u00b5g").replace("uL", "\u00b5L").replace("umol", "\u00b5mol")
             .replace("10^9/L", "\u00d710\u2079/L"))
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
             "scale": SCALES, "system": SCALES, "sex": SEX, "analyte": ANALYTE_NAMES, "consciousness": CONSCIOUSNESS,
             "seizure": SEIZURES, "cerebral_edema": EDEMA}.get(column, {})
    return table.get(str(code), str(code))


def crs_group(code: str) -> str:
    """A CRS group in words: 'none' -> 'No CRS', 'severe' -> 'Severe CRS'."""
    return CRS_GROUPS.get(str(code), words(code))


def crs_driver(code: str) -> str:
    """The rule that set a CRS grade in words ('hypotension:one_pressor' -> 'hypotension on one vasopressor');
    ties joined by '+' become 'a and b'."""
    parts = []
    for part in re.split(r"\+(?=[a-z])", str(code)):
        kind, _, rest = part.partition(":")
        if part in CRS_DRIVERS:
            parts.append(CRS_DRIVERS[part])
        elif kind == "hypoxia":
            parts.append(OXYGEN.get(rest, words(rest)).lower() if rest not in ("cpap", "bipap") else rest.upper())
        elif kind == "organ":
            code_, _, grade = rest.partition("_ctcae")
            plus = "\u2265" if grade.endswith("+") else ""
            parts.append(f"{in_sentence(analyte(code_, unit=False))} CTCAE grade {plus}{grade.rstrip('+')}")
        else:
            parts.append(words(part).lower())
    return join_words(parts)


def marker(key: str) -> str:
    """A per-patient extreme in words with its unit: 'il6_max' -> 'Highest IL-6, pg/mL',
    'alt_ctcae_ge3' -> 'ALT, CTCAE v5.0 grade \u22653'; registered keys as `label`."""
    if key in VARIABLES:
        return VARIABLES[key]
    base, _, kind = key.rpartition("_")
    if key.endswith("_ctcae_ge3"):
        return f"{analyte(key[:-len('_ctcae_ge3')], unit=False)}, CTCAE v5.0 grade \u22653"
    if kind in ("max", "min") and base in contract.ANALYTES:
        name = in_sentence(analyte(base, unit=False))
        unit = analyte(base).rpartition(", ")[2] if ", " in analyte(base) else ""
        word = ("Longest" if unit == "s" else "Highest") if kind == "max" else ("Shortest" if unit == "s" else "Lowest")
        return f"{word} {name}" + (f", {unit}" if unit else "")
    return label(key)


def in_sentence(name: str) -> str:
    """A clinical name inside a sentence: 'Platelets' -> 'platelets', acronyms ('IL-6', 'aPTT') kept."""
    return name if name[1:2].isupper() or not name[1:2].isalpha() else name[:1].lower() + name[1:]


def join_words(items, last: str = "and") -> str:
    """'a, b and c' (as helpers.fmt.join_words; kept here so labels import nothing from the page layer)."""
    items = [str(i) for i in items]
    return "".join(items) if len(items) <= 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"

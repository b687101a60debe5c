"""The data contract: every table, column, type, range, vocabulary and unit, defined once.

Column names here are fixed: other cohorts and tools are written against them. Add optional
columns; never rename. The book's data-dictionary page and the blank templates are generated
from this module (`python -m helpers dictionary`, `python -m helpers templates`).
"""
from __future__ import annotations

from dataclasses import dataclass

# Column kinds understood by the loader (helpers.cohort):
#   text     free text (patient_id)
#   number   a real number (empty = missing)
#   integer  a whole number (empty = missing)
#   flag     0/1 (true/false accepted), stored as pandas Int64
#   boolean  true/false (0/1 accepted), stored as pandas boolean
#   category one of `allowed` (case and surrounding spaces normalised)
KINDS = ("text", "number", "integer", "flag", "boolean", "category")


@dataclass(frozen=True)
class Column:
    """One column of a cohort table: its name, kind, whether required, range and meaning."""

    name: str
    kind: str
    description: str
    required: bool = False
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """One table of a cohort (a CSV file or a workbook sheet)."""

    name: str
    description: str
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    used_by: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    def column(self, name: str) -> Column:
        return {c.name: c for c in self.columns}[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


RESPONSES = ("CR", "CRi", "PR", "NR", "NE")  # NE: not evaluable (died or left before assessment)
OXYGEN_DEVICES = (
    "none", "low_flow", "high_flow", "facemask", "nonrebreather", "venturi",
    "cpap", "bipap", "mechanical_ventilation",
)
DEATH_CAUSES = ("relapse", "crs", "infection", "other", "icans")
# ICANS domains, ASTCT 2019 consensus (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638).
CONSCIOUSNESS_LEVELS = ("alert", "awakens_spontaneously", "awakens_to_voice", "awakens_to_tactile", "unarousable")
SEIZURE_KINDS = ("none", "rapidly_resolving", "prolonged_or_repetitive")
CEREBRAL_EDEMA_KINDS = ("none", "focal", "diffuse")

# Analyte vocabulary with canonical units. Values in other units are converted by the loader
# only where the conversion is a fixed factor (see UNIT_CONVERSIONS), never guessed.
ANALYTES: dict[str, tuple[str, str]] = {
    "il6": ("pg/mL", "interleukin-6"),
    "ifng": ("pg/mL", "interferon-gamma"),
    "il10": ("pg/mL", "interleukin-10"),
    "tnfa": ("pg/mL", "tumour necrosis factor alpha"),
    "crp": ("mg/L", "C-reactive protein"),
    "ferritin": ("ng/mL", "ferritin"),
    "procalcitonin": ("ng/mL", "procalcitonin"),
    "fibrinogen": ("g/L", "fibrinogen"),
    "d_dimer": ("mg/L FEU", "D-dimer"),
    "pt": ("s", "prothrombin time"),
    "aptt": ("s", "activated partial thromboplastin time"),
    "alt": ("U/L", "alanine aminotransferase"),
    "ast": ("U/L", "aspartate aminotransferase"),
    "bilirubin": ("umol/L", "total bilirubin"),
    "creatinine": ("umol/L", "creatinine"),
    "wbc": ("10^9/L", "white blood cells"),
    "anc": ("10^9/L", "absolute neutrophil count"),
    "hemoglobin": ("g/L", "haemoglobin"),
    "platelets": ("10^9/L", "platelets"),
    "ldh": ("U/L", "lactate dehydrogenase"),
    # B-cell aplasia, the pharmacodynamic marker of CD19 CAR-T persistence, and its consequence.
    "cd19_b_cells": ("cells/uL", "CD19+ B cells in blood"),
    "igg": ("g/L", "immunoglobulin G"),
}

# (analyte, unit found) -> factor to the canonical unit. Only unambiguous, fixed factors.
UNIT_CONVERSIONS: dict[tuple[str, str], float] = {
    ("crp", "mg/dL"): 10.0,
    ("fibrinogen", "mg/dL"): 0.01,
    ("bilirubin", "mg/dL"): 17.1,
    ("creatinine", "mg/dL"): 88.4,
    ("hemoglobin", "g/dL"): 10.0,
    ("ferritin", "ug/L"): 1.0,
    ("procalcitonin", "ug/L"): 1.0,
    ("wbc", "10^3/uL"): 1.0,
    ("anc", "10^3/uL"): 1.0,
    ("platelets", "10^3/uL"): 1.0,
    ("d_dimer", "ug/mL FEU"): 1.0,
    ("cd19_b_cells", "cells/mm3"): 1.0,
    ("cd19_b_cells", "10^9/L"): 1000.0,
    ("igg", "mg/dL"): 0.01,
}

_ID = Column("patient_id", "text", "Study identifier; never published (the book shows P01, P02, ... in file order).",
             required=True, nullable=False)
_DAY = Column("day", "number", "Day relative to CAR-T infusion (day 0; negative = before infusion).",
              required=True, unit="days", minimum=-60, maximum=3650, nullable=False)

PATIENTS = Table(
    "patients", "One row per infused patient: baseline, product, response and outcome.", True,
    (
        _ID,
        Column("best_response", "category", "Best overall response.", required=True,
               allowed=RESPONSES, nullable=False),
        Column("os_days", "number", "Days from infusion to death or last contact.", required=True,
               unit="days", minimum=0, maximum=7300, nullable=False),
        Column("os_event", "flag", "1 = died, 0 = alive at last contact.", required=True, nullable=False),
        Column("age_years", "number", "Age at infusion.", unit="years", minimum=0, maximum=120),
        Column("sex", "category", "Sex.", allowed=("F", "M")),
        Column("bm_blasts_pct", "number", "Bone-marrow blasts before lymphodepletion (disease burden).",
               unit="%", minimum=0, maximum=100),
        Column("mrd_negative", "boolean", "MRD < 0.01% by flow in remission; blank when not in CR/CRi."),
        Column("remission_day", "number", "Day remission (CR/CRi) was first documented; blank when not in "
               "remission. Without it the book assumes remission at the landmark day.", unit="days",
               minimum=0, maximum=7300),
        Column("pfs_days", "number", "Days from infusion to relapse, progression, death or last contact.",
               unit="days", minimum=0, maximum=7300),
        Column("pfs_event", "flag", "1 = relapse, progression/treatment failure or death; 0 = censored."),
        Column("ph_positive", "boolean", "Philadelphia chromosome (BCR-ABL1) positive."),
        Column("prior_lines", "integer", "Prior lines of therapy.", minimum=0, maximum=20),
        Column("prior_allo_hsct", "boolean", "Allogeneic HSCT before CAR-T."),
        Column("extramedullary", "boolean", "Extramedullary disease at enrolment."),
        Column("ldh_u_per_l", "number", "Lactate dehydrogenase before lymphodepletion.", unit="U/L",
               minimum=0, maximum=100000),
        Column("car_dose_per_kg", "number", "Infused CAR-T cells per kg body weight.", unit="cells/kg",
               minimum=0, maximum=1e9),
        Column("product_cd4_pct", "number", "CD4+ share of infused T cells.", unit="%", minimum=0, maximum=100),
        Column("product_cd8_pct", "number", "CD8+ share of infused T cells.", unit="%", minimum=0, maximum=100),
        Column("product_naive_pct", "number", "Naive share of infused T cells.", unit="%", minimum=0, maximum=100),
        Column("product_cm_pct", "number", "Central-memory share of infused T cells.", unit="%",
               minimum=0, maximum=100),
        Column("product_em_pct", "number", "Effector-memory share of infused T cells.", unit="%",
               minimum=0, maximum=100),
        Column("product_eff_pct", "number", "Effector share of infused T cells.", unit="%",
               minimum=0, maximum=100),
        Column("hsct_day", "number", "Day of allogeneic HSCT after CAR-T; blank if none.", unit="days",
               minimum=0, maximum=7300),
        Column("crs_grade_reported", "integer", "CRS grade as recorded by the centre (any scale).",
               minimum=0, maximum=5),
        Column("icans_grade_reported", "integer", "ICANS grade as recorded by the centre.",
               minimum=0, maximum=5),
        Column("death_cause", "category", "Cause of death; blank if alive.", allowed=DEATH_CAUSES),
        Column("lymphodepletion_day", "number", "First day of lymphodepleting chemotherapy (e.g. -5); the "
               "CAR-HEMATOTOX baseline is the last value on or before it. Blank: day -5 is assumed.",
               unit="days", minimum=-60, maximum=0),
    ),
    key=("patient_id",),
    used_by="every chapter",
)

KINETICS = Table(
    "kinetics", "CAR transgene in blood by qPCR, one row per patient and sample day.", False,
    (
        _ID, _DAY,
        Column("car_copies_per_ug_dna", "number", "CAR transgene copies per ug genomic DNA; 0 = below the "
               "limit of quantification.", required=True, unit="copies/ug DNA", minimum=0, maximum=1e9,
               nullable=False),
    ),
    key=("patient_id", "day"),
    used_by="chapter 5 (kinetics); peak expansion in chapters 3 and 4",
)

DAILY = Table(
    "daily", "The raw daily record CRS is graded from: one row per patient and day.", False,
    (
        _ID, _DAY,
        Column("temp_max_c", "number", "Highest temperature of the day.", unit="C", minimum=30, maximum=45),
        Column("sbp_min_mmhg", "number", "Lowest systolic blood pressure of the day.", unit="mmHg",
               minimum=20, maximum=260),
        Column("vasopressors", "integer", "Number of vasopressors in use (vasopressin excluded).",
               minimum=0, maximum=6),
        Column("vasopressin", "flag", "Vasopressin in use."),
        Column("oxygen", "category", "Most intensive oxygen support of the day.", allowed=OXYGEN_DEVICES),
        Column("o2_flow_l_min", "number", "Oxygen flow.", unit="L/min", minimum=0, maximum=80),
        Column("fio2_pct", "number", "Fraction of inspired oxygen.", unit="%", minimum=21, maximum=100),
        Column("tocilizumab", "flag", "Tocilizumab given that day."),
        Column("steroids", "flag", "Corticosteroids given that day for CRS/ICANS."),
        Column("fever_other_cause", "flag", "Fever attributed to another documented cause (e.g. infection)."),
        # Optional columns some grading systems need (Lee 2014 high-dose pressors; Penn fluid boluses,
        # coagulation products). Absent -> the graders assume the milder reading and say so.
        Column("vasopressor_high_dose", "flag", "High-dose vasopressor by the Lee 2014 footnote definition."),
        Column("norepi_equiv_ug_min", "number", "Highest norepinephrine-equivalent vasopressor dose of the day.",
               unit="ug/min", minimum=0, maximum=500),
        Column("fluid_boluses", "integer", "IV fluid boluses given for hypotension that day.", minimum=0, maximum=20),
        Column("coag_replacement", "flag", "FFP, cryoprecipitate or fibrinogen concentrate given for coagulopathy."),
        # Optional ICANS domains (ASTCT 2019 consensus); absent or blank = not assessed that day.
        Column("ice_score", "integer", "Immune effector Cell-associated Encephalopathy score (age >= 12): "
               "orientation 4, naming 3, commands 3, writing 1, attention 1.", minimum=0, maximum=10),
        Column("capd_score", "integer", "Cornell Assessment of Pediatric Delirium (children under 12); "
               "higher is worse.", minimum=0, maximum=32),
        Column("consciousness", "category", "Level of consciousness (worst of the day).",
               allowed=CONSCIOUSNESS_LEVELS),
        Column("seizure", "category", "Seizure: rapidly_resolving = any clinical seizure resolving rapidly or "
               "non-convulsive on EEG resolving with intervention; prolonged_or_repetitive = > 5 min or "
               "repetitive without return to baseline.", allowed=SEIZURE_KINDS),
        Column("motor_weakness", "flag", "Deep focal motor weakness (hemiparesis, paraparesis)."),
        Column("cerebral_edema", "category", "Cerebral oedema: focal on neuroimaging; diffuse = diffuse on "
               "imaging, decerebrate/decorticate posturing, cranial nerve VI palsy, papilloedema or Cushing's triad.",
               allowed=CEREBRAL_EDEMA_KINDS),
        Column("icans_other_cause", "flag", "The day's neurological findings are attributed to another cause."),
    ),
    key=("patient_id", "day"),
    used_by="chapter 4 (CRS grading from the raw record)",
)

LABS = Table(
    "labs", "Laboratory values, long format: one row per patient, day and analyte.", False,
    (
        _ID, _DAY,
        Column("analyte", "category", "Analyte code.", required=True, allowed=tuple(ANALYTES),
               nullable=False),
        Column("value", "number", "Measured value in `unit`.", required=True, minimum=0, maximum=1e7,
               nullable=False),
        Column("unit", "text", "Unit of `value` (canonical units in the analyte table).", required=True,
               nullable=False),
    ),
    key=("patient_id", "day", "analyte"),
    used_by="chapter 4 (severity comparison, organ toxicity)",
)

TABLES: dict[str, Table] = {t.name: t for t in (PATIENTS, KINETICS, DAILY, LABS)}

# Column names that look like direct identifiers or calendar dates. A cohort containing any of
# them is refused: the book never needs them and must never publish them.
FORBIDDEN_COLUMN_WORDS = (
    "name", "surname", "firstname", "initials", "mrn", "record_number", "medical_record", "hospital_number",
    "nhs", "ssn", "social_security", "dob", "birth", "date", "address", "postcode", "zip", "phone",
    "email",
)


@dataclass(frozen=True)
class SettingSpec:
    """One analysis choice a cohort may set in cohort.yml."""

    name: str
    default: object
    description: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("severe_crs_grade", 3, "Lowest CRS grade counted as severe (ASTCT 2019: grade >= 3)."),
    SettingSpec("crs_system", "astct", "Primary CRS grading system: astct, lee2014, ctcae5 or penn."),
    SettingSpec("landmark_day", 28, "Landmark day for analyses of post-infusion factors (response assessment)."),
    SettingSpec("remission_responses", ["CR", "CRi"], "Best responses counted as remission."),
    SettingSpec("censor_at_hsct", False, "Censor OS/PFS at allo-HSCT in the primary analysis."),
)

COHORT_FIELDS: tuple[SettingSpec, ...] = (
    SettingSpec("name", "Unnamed cohort", "Name shown on every page."),
    SettingSpec("simulated", False, "true if the data are simulated (every page then says so)."),
    SettingSpec("source", "", "Free text: where the data come from."),
    SettingSpec("enrolled", None, "Patients enrolled before infusion (optional); the flow diagram then starts there."),
)


def dictionary_rows() -> list[dict[str, str]]:
    """The data dictionary as plain rows: table, column, required, type, unit, allowed, description."""
    rows = []
    for table in TABLES.values():
        for c in table.columns:
            if c.allowed:
                allowed = ", ".join(c.allowed)
            elif c.kind in ("flag", "boolean"):
                allowed = "0/1 (true/false accepted)" if c.kind == "flag" else "true/false (0/1 accepted)"
            elif c.minimum is not None or c.maximum is not None:
                allowed = f"{_num(c.minimum)} to {_num(c.maximum)}"
            else:
                allowed = ""
            rows.append({
                "table": table.filename, "column": c.name,
                "required": "required" if (c.required and table.required) else
                ("required in this table" if c.required else "optional"),
                "type": c.kind, "unit": c.unit, "allowed": allowed, "description": c.description,
            })
    return rows


def _num(x: float | None) -> str:
    if x is None:
        return "any"
    return f"{x:g}"

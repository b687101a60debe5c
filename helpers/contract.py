"""The data contract: every table, column, type, range, vocabulary and unit, defined once.

Column names here are fixed: other cohorts and tools are written against them. Add optional
columns; never rename. The book's data-dictionary page and the blank templates are generated
from this module (`python -m helpers dictionary`, `python -m helpers templates`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
# only where the conversion is a fixed factor (helpers.units: pint, UNIT_CONVERSIONS, molar masses), never guessed.
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

# Kinetics samples before infusion are baselines (the month before infusion: apheresis, lymphodepletion)
# or traces of an earlier CAR-T product; they are kept and reported as such, never used for Cmax/Tmax.
_SAMPLE_DAY = Column("day", "number", "Day relative to CAR-T infusion (day 0). Days -30 to -1 are pre-infusion "
                     "baselines (apheresis, lymphodepletion, an earlier CAR-T product); kinetic parameters use "
                     "days from 0.", required=True, unit="days", minimum=-30, maximum=3650, nullable=False)

KINETICS = Table(
    "kinetics", "CAR transgene in blood by qPCR, one row per patient and sample day.", False,
    (
        _ID, _SAMPLE_DAY,
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
    SettingSpec("episode_gap_days", 3, "Consecutive days without fever, hypotension or hypoxia that end a CRS "
                "episode and its fever masking; a later CRS day opens a new episode (recurrence). Default 3, the "
                "span of a stable recovery in the EHA/EBMT haematotoxicity consensus, for want of a CRS rule."),
)

COHORT_FIELDS: tuple[SettingSpec, ...] = (
    SettingSpec("name", "Unnamed cohort", "Name shown on every page."),
    SettingSpec("simulated", False, "true if the data are simulated (every page then says so)."),
    SettingSpec("source", "", "Free text: where the data come from."),
    SettingSpec("enrolled", None, "Patients enrolled before infusion (optional); the flow diagram then starts there."),
)


def cohort_identity(meta: dict, path: Path) -> tuple[str, bool]:
    """The cohort's name (cohort.yml's `name`, else its folder's or workbook's name) and whether it is simulated."""
    return str(meta.get("name") or path.stem), bool(meta.get("simulated", False))


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
                allowed = f"{_limit(c.minimum)} to {_limit(c.maximum)}"
            else:
                allowed = ""
            rows.append({
                "table": table.filename, "column": c.name,
                "required": "required" if (c.required and table.required) else
                ("required in this table" if c.required else "optional"),
                "type": c.kind, "unit": c.unit, "allowed": allowed, "description": c.description,
            })
    return rows


def _limit(x: float | None) -> str:
    """A range limit for the data dictionary: '1,000,000,000' (a person reads it), 'any' when open."""
    if x is None:
        return "any"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,}"


def _num(x: float | None) -> str:
    if x is None:
        return "any"
    return f"{x:g}"


# --------------------------------------------------------------------------------------------
# Units, plausibility and vocabularies a centre's export is read with (helpers.units,
# helpers.plausibility, helpers.prepare). Append new entries; keep existing ones in place.
# --------------------------------------------------------------------------------------------

# Molar masses for mass <-> molar conversions of laboratory values (g/mol; PubChem).
MOLAR_MASS_G_PER_MOL: dict[str, float] = {
    "bilirubin": 584.66,   # mg/dL -> umol/L x 17.1
    "creatinine": 113.12,  # mg/dL -> umol/L x 88.4
}


@dataclass(frozen=True)
class Range:
    """Limits for a value: outside `possible` is an error (not compatible with life or a slip), outside
    `plausible` a warning. Either bound may be None (no limit)."""

    possible: tuple[float | None, float | None]
    plausible: tuple[float | None, float | None]
    source: str = ""


_LAB = ("well beyond adult and paediatric reference intervals and reported extremes; the project's limits, to "
        "widen where a centre has seen more")

# Per-analyte limits in the canonical unit (checked after unit conversion).
ANALYTE_RANGES: dict[str, Range] = {
    "il6": Range((0, 1e6), (0, 1e5), "CRS cytokine peaks of 10^3-10^5 pg/mL are reported (Teachey et al., Cancer "
                 "Discov 2016; verify)"),
    "ifng": Range((0, 1e6), (0, 1e5), "Teachey et al., Cancer Discov 2016"),
    "il10": Range((0, 1e6), (0, 1e5), "Teachey et al., Cancer Discov 2016"),
    "tnfa": Range((0, 1e5), (0, 1e4), "Teachey et al., Cancer Discov 2016"),
    "crp": Range((0, 1000), (0, 600), _LAB),
    "ferritin": Range((0, 500000), (0, 200000), "HLH-like CRS ferritin can exceed 10^5 ng/mL"),
    "procalcitonin": Range((0, 1000), (0, 500), _LAB),
    "fibrinogen": Range((0, 20), (0.1, 10), _LAB),
    "d_dimer": Range((0, 1000), (0, 100), _LAB),
    "pt": Range((3, 300), (5, 150), _LAB),
    "aptt": Range((5, 300), (15, 200), _LAB),
    "alt": Range((0, 50000), (0, 20000), _LAB),
    "ast": Range((0, 50000), (0, 20000), _LAB),
    "bilirubin": Range((0, 1500), (0, 800), _LAB),
    "creatinine": Range((5, 3000), (10, 1500), _LAB),
    "wbc": Range((0, 1000), (0, 500), "hyperleukocytosis in ALL rarely exceeds 500 x 10^9/L"),
    "anc": Range((0, 500), (0, 100), _LAB),
    "hemoglobin": Range((20, 400), (25, 220), "below 20 g/L is not compatible with life; g/dL values (5-17) "
                        "fall here"),
    "platelets": Range((0, 5000), (0, 2000), _LAB),
    "ldh": Range((0, 100000), (50, 50000), _LAB),
}

# (table, column) -> limits beyond the contract's own minimum/maximum.
COLUMN_RANGES: dict[tuple[str, str], Range] = {
    ("daily", "temp_max_c"): Range((30, 43), (34, 42), "core temperatures above 43 C or below 30 C are not "
                                   "survivable outside a resuscitation setting"),
    ("daily", "sbp_min_mmhg"): Range((40, 300), (50, 250), "a systolic pressure below 40 mmHg is cardiac arrest"),
    ("daily", "o2_flow_l_min"): Range((0, 80), (0, 70), "high-flow devices deliver up to 60-70 L/min"),
    ("patients", "age_years"): Range((0, 120), (1, 90), "CD19 CAR-T in B-ALL is given from age 1"),
    ("patients", "car_dose_per_kg"): Range((1e3, 1e9), (1e4, 1e8), "CD19 CAR-T doses span about 10^5-10^7 "
                                         "CAR+ cells/kg (tisagenlecleucel 0.2-5.0 x 10^6/kg; dose-finding "
                                         "trials 10^5-10^7/kg)"),
    ("patients", "ldh_u_per_l"): Range((0, 100000), (50, 50000), _LAB),
}

# Analyte -> units a value is often entered in by mistake while labelled in the canonical unit;
# the distribution check names them as the likely cause ("looks like mg/dL").
LIKELY_UNIT_SLIPS: dict[str, tuple[str, ...]] = {
    "crp": ("mg/dL",), "hemoglobin": ("g/dL",), "creatinine": ("mg/dL",), "bilirubin": ("mg/dL",),
    "fibrinogen": ("mg/dL",), "d_dimer": ("ug/L FEU",), "ferritin": ("ug/mL",), "il6": ("ng/mL",),
    "wbc": ("cells/uL",), "anc": ("cells/uL",), "platelets": ("cells/uL",), "procalcitonin": ("pg/mL",),
}

# cohort.yml settings a centre declares for its whole cohort (read by helpers.cohort).
UNIT_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("d_dimer_units", None, "FEU or DDU: how D-dimer values given without the qualifier (e.g. "
                "'mg/L') were reported; DDU values are doubled to FEU (ISTH SSC convention)."),
)

# Structural columns of a REDCap export: ignored with a note (they are not data and never published).
REDCAP_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                  "redcap_data_access_group", "redcap_survey_identifier", "redcap_arm")

# Default synonyms used by `python -m helpers prepare` (a centre extends them in mapping.yml).
# Keys are compared lower-cased with spaces, '-' and '_' removed.
FLAG_SYNONYMS: dict[str, int] = {
    "1": 1, "0": 0, "yes": 1, "no": 0, "y": 1, "n": 0, "true": 1, "false": 0, "t": 1, "f": 0,
    "positive": 1, "negative": 0, "pos": 1, "neg": 0, "checked": 1, "unchecked": 0, "ja": 1, "nein": 0,
}
VALUE_SYNONYMS: dict[str, dict[str, str]] = {
    "best_response": {
        "cr": "CR", "completeremission": "CR", "completeresponse": "CR", "cri": "CRi",
        "crwithincompletecountrecovery": "CRi", "crwithincompletehematologicrecovery": "CRi",
        "crwithincompletehaematologicrecovery": "CRi", "pr": "PR", "partialresponse": "PR",
        "partialremission": "PR", "nr": "NR", "noresponse": "NR", "refractory": "NR",
        "progressivedisease": "NR", "pd": "NR", "stabledisease": "NR", "sd": "NR",
        "ne": "NE", "notevaluable": "NE", "notassessed": "NE", "earlydeath": "NE",
    },
    "sex": {"f": "F", "female": "F", "w": "F", "woman": "F", "m": "M", "male": "M", "man": "M"},
    "death_cause": {
        "relapse": "relapse", "progression": "relapse", "diseaseprogression": "relapse",
        "progressivedisease": "relapse", "leukemia": "relapse", "leukaemia": "relapse",
        "crs": "crs", "cytokinereleasesyndrome": "crs", "infection": "infection", "sepsis": "infection",
        "septicshock": "infection", "other": "other",
    },
}
# Best-response strings that also carry the MRD result: -> (best_response, mrd_negative).
RESPONSE_WITH_MRD: dict[str, tuple[str, bool]] = {
    "mrdnegativecr": ("CR", True), "crmrdnegative": ("CR", True), "crmrd": ("CR", True),
    "mrdpositivecr": ("CR", False), "crmrdpositive": ("CR", False), "crmrd+": ("CR", False),
    "mrdnegativecri": ("CRi", True), "crimrdnegative": ("CRi", True), "crimrd": ("CRi", True),
    "mrdpositivecri": ("CRi", False), "crimrdpositive": ("CRi", False), "crimrd+": ("CRi", False),
}
ANALYTE_SYNONYMS: dict[str, str] = {
    "il6": "il6", "interleukin6": "il6", "ifng": "ifng", "ifngamma": "ifng", "interferongamma": "ifng",
    "ifnγ": "ifng", "il10": "il10", "interleukin10": "il10", "tnfa": "tnfa", "tnfalpha": "tnfa",
    "tumornecrosisfactoralpha": "tnfa", "tnfα": "tnfa", "crp": "crp", "creactiveprotein": "crp",
    "ferritin": "ferritin", "pct": "procalcitonin", "procalcitonin": "procalcitonin",
    "fibrinogen": "fibrinogen", "fib": "fibrinogen", "ddimer": "d_dimer", "dd": "d_dimer",
    "pt": "pt", "prothrombintime": "pt", "aptt": "aptt", "ptt": "aptt",
    "alt": "alt", "gpt": "alt", "alat": "alt", "sgpt": "alt", "ast": "ast", "got": "ast", "asat": "ast",
    "sgot": "ast", "bilirubin": "bilirubin", "totalbilirubin": "bilirubin", "tbil": "bilirubin",
    "bili": "bilirubin", "creatinine": "creatinine", "crea": "creatinine", "creat": "creatinine",
    "wbc": "wbc", "leukocytes": "wbc", "leucocytes": "wbc", "whitebloodcells": "wbc",
    "anc": "anc", "neutrophils": "anc", "absoluteneutrophilcount": "anc", "neut": "anc",
    "hb": "hemoglobin", "hgb": "hemoglobin", "hemoglobin": "hemoglobin", "haemoglobin": "hemoglobin",
    "plt": "platelets", "platelets": "platelets", "thrombocytes": "platelets", "ldh": "ldh",
    "lactatedehydrogenase": "ldh",
}
# Oxygen support as written in vitals exports -> contract device (helpers.prepare parses flow and FiO2).
OXYGEN_SYNONYMS: dict[str, str] = {
    "roomair": "none", "ra": "none", "none": "none", "no": "none", "ambient": "none",
    "nc": "low_flow", "nasalcannula": "low_flow", "lowflow": "low_flow", "lfnc": "low_flow", "blowby": "low_flow",
    "hfnc": "high_flow", "highflow": "high_flow", "hfno": "high_flow", "optiflow": "high_flow",
    "airvo": "high_flow", "fm": "facemask", "facemask": "facemask", "simplemask": "facemask", "mask": "facemask",
    "nrb": "nonrebreather", "nrm": "nonrebreather", "nonrebreather": "nonrebreather",
    "venturi": "venturi", "venturimask": "venturi", "cpap": "cpap", "bipap": "bipap", "niv": "bipap",
    "intubated": "mechanical_ventilation", "ventilated": "mechanical_ventilation",
    "mechanicalventilation": "mechanical_ventilation", "mv": "mechanical_ventilation",
    "ett": "mechanical_ventilation", "imv": "mechanical_ventilation",
}
# Catecholamines -> potency relative to norepinephrine for the norepinephrine-equivalent dose
# (Goradia S et al., "Vasopressor dose equivalence: a scoping review and suggested formula",
# J Crit Care 2021;61:233-240; the same factors as Kotani Y et al., Crit Care 2023;27:29):
# NEE = norepinephrine + epinephrine + phenylephrine / 10 + dopamine / 100 + metaraminol / 8.
# Vasopressin is not converted: the contract records it as its own flag (`vasopressin`), as ASTCT
# and the Lee 2014 high-dose footnote treat it separately.
CATECHOLAMINES: dict[str, float] = {
    "norepinephrine": 1.0, "epinephrine": 1.0, "phenylephrine": 0.1, "dopamine": 0.01, "metaraminol": 0.125,
}
DRUG_SYNONYMS: dict[str, str] = {
    "norepinephrine": "norepinephrine", "noradrenaline": "norepinephrine", "levophed": "norepinephrine",
    "norepi": "norepinephrine", "ne": "norepinephrine", "epinephrine": "epinephrine", "adrenaline": "epinephrine",
    "epi": "epinephrine", "phenylephrine": "phenylephrine", "neosynephrine": "phenylephrine",
    "dopamine": "dopamine", "metaraminol": "metaraminol", "aramine": "metaraminol",
    "vasopressin": "vasopressin", "argipressin": "vasopressin", "pitressin": "vasopressin",
    "vasostrict": "vasopressin", "terlipressin": "vasopressin",
    "tocilizumab": "tocilizumab", "actemra": "tocilizumab", "roactemra": "tocilizumab", "toci": "tocilizumab",
    "dexamethasone": "steroids", "decadron": "steroids", "methylprednisolone": "steroids",
    "solumedrol": "steroids", "hydrocortisone": "steroids", "prednisolone": "steroids", "prednisone": "steroids",
    "dex": "steroids", "mp": "steroids", "mpred": "steroids",
}
# A centre's calendar-date columns in the patients table -> the contract's day column (helpers.prepare).
DATE_COLUMNS: dict[str, str] = {
    "death_or_last_contact_date": "os_days", "last_contact_date": "os_days",
    "pfs_date": "pfs_days", "progression_or_last_contact_date": "pfs_days",
    "remission_date": "remission_day", "hsct_date": "hsct_day",
}

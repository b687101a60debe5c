"""`python -m helpers prepare RAW OUT`: a centre's dated export -> a cohort in the data contract.

RAW is a folder of CSV files (or one .xlsx workbook) in the contract's shape but as a hospital exports
it: calendar dates instead of days (each patient's `infusion_date`; `*_date` columns such as
`death_or_last_contact_date`; a `date` column in the long tables), the centre's own column names and
words ("Yes"/"No", "MRD-negative CR", "IL-6", "HFNC 40L 50%", drug names and doses). A mapping file
(`RAW/mapping.yml` or `--mapping`) renames columns, names the files, declares the date format and
extends the default synonym tables of `helpers.contract`. Everything runs locally.

OUT receives only contract tables and columns, with days from infusion and no calendar date. Every
change is written to `<OUT>_conversion_log.csv` beside OUT (it holds the original values, dates and
identifiers included: keep it private). A problem that needs the centre (an ambiguous date such as
03/04/2022 without a declared format, a sample without the patient's infusion date) is reported once
per kind, and nothing is written.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import contract, units
from helpers.cohort import Report

DATE_FORMATS = ("iso", "day-first", "month-first")
_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T].*)?$")
_NUMERIC = re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{2}|\d{4})$")
_BIRTH = ("date_of_birth", "birth_date", "dob")
_AMBIGUOUS = ("dates such as 03/04/2022 (3 April or 4 March?) are ambiguous without a declared format: declare "
              "date_format: day-first or month-first in mapping.yml, or write ISO 8601 dates (YYYY-MM-DD).")


@dataclass
class Mapping:
    """A centre's mapping file: file names, column renames, date format and vocabulary."""

    files: dict[str, str] = field(default_factory=dict)
    date_format: str = "iso"
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    analytes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path | None, report: Report) -> "Mapping":
        """Read mapping.yml; unknown keys and a wrong date format are errors."""
        if path is None or not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        known = {"files", "date_format", "columns", "values", "analytes"}
        for key in sorted(set(data) - known):
            report.add("error", path.name, f"unknown key '{key}'; known: {', '.join(sorted(known))}.")
        fmt = str(data.get("date_format", "iso")).strip().lower()
        if fmt not in DATE_FORMATS:
            report.add("error", path.name, f"date_format is '{fmt}'; expected one of {', '.join(DATE_FORMATS)}.")
            fmt = "iso"
        return cls(files=data.get("files") or {}, date_format=fmt,
                   columns={t: {str(k): str(v) for k, v in (c or {}).items()} for t, c in (data.get("columns") or {}).items()},
                   values={c: {_key(k): str(v) for k, v in (m or {}).items()} for c, m in (data.get("values") or {}).items()},
                   analytes={_key(k): str(v) for k, v in (data.get("analytes") or {}).items()})


def _key(text: object) -> str:
    """Lower-case, without spaces, '-', '_' and '.': how synonyms are compared ('MRD-negative CR' -> 'mrdnegativecr')."""
    return re.sub(r"[\s\-_.]+", "", str(text).strip().lower())


class Log:
    """The conversion log: one row per change (table, row, column, original, new value, rule)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, table: str, rows, column: str, original, new, rule: str) -> None:
        """Log one change per row: spreadsheet rows, the original and new values, the rule applied."""
        for r, o, n in zip(rows, original, new):
            self.rows.append({"table": table, "row": int(r), "column": column, "original": o, "new": n, "rule": rule})

    def frame(self) -> pd.DataFrame:
        """The log as a table (written beside OUT)."""
        return pd.DataFrame(self.rows, columns=["table", "row", "column", "original", "new", "rule"])

    def summary(self) -> list[str]:
        """One line per (table, column, rule) with its count: what the command prints."""
        df = self.frame()
        if df.empty:
            return []
        lines = []
        for (table, rule), group in df[df["rule"].str.startswith("column ")].groupby(["table", "rule"], sort=False):
            lines.append(f"{table}: {rule}: {', '.join(group['column'])}")
        cells = df[~df["rule"].str.startswith("column ")]
        counts = cells.groupby(["table", "column", "rule"], sort=False).size()
        lines += [f"{t}.{c}: {rule} ({n} row{'s' if n != 1 else ''})" for (t, c, rule), n in counts.items()]
        return lines


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _read_raw(raw: Path, mapping: Mapping, report: Report) -> dict[str, pd.DataFrame]:
    """The centre's tables as text, keyed by contract table name (files named in the mapping or <table>.csv)."""
    tables = {}
    if raw.is_file():
        sheets = pd.read_excel(raw, sheet_name=None, dtype=str, keep_default_na=False)
        for name in contract.TABLES:
            wanted = {name, Path(mapping.files.get(name, name)).stem.lower()}
            match = next((s for s in sheets if s.strip().lower() in wanted), None)
            if match is not None:
                tables[name] = sheets[match]
        if "patients" not in tables:
            report.add("error", raw.name, "has no 'patients' sheet (or the sheet the mapping file names).")
        return tables
    for name in contract.TABLES:
        path = raw / mapping.files.get(name, f"{name}.csv")
        if path.exists():
            tables[name] = _read_text_table(path, report)
            if "redcap_repeat_instrument" in tables[name]:
                tables[name] = _redcap_instrument(tables[name], name)
    if "patients" not in tables:
        report.add("error", mapping.files.get("patients", "patients.csv"), "required table is missing.")
    return tables


def _read_text_table(path: Path, report: Report) -> pd.DataFrame:
    """A CSV as text: UTF-8 (or Windows-1252, noted), comma- or semicolon-separated."""
    from io import StringIO

    data = path.read_bytes()
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        decoded = data.decode("cp1252")
        report.add("note", path.name, "read as Windows-1252 (not UTF-8).")
    header = decoded.splitlines()[0] if decoded.strip() else ""
    sep = ";" if ";" in header and "," not in header else ","
    return pd.read_csv(StringIO(decoded), dtype=str, keep_default_na=False, sep=sep)


def _redcap_instrument(export: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows and fields of one instrument of a REDCap export (the non-repeating rows are patients)."""
    from helpers.templates import redcap_name

    instrument = export["redcap_repeat_instrument"].astype(str).str.strip()
    rows = instrument.eq("") if table == "patients" else instrument.eq(table)
    fields = [redcap_name(table, c) for c in contract.TABLES[table].names]
    extra = [c for c in export.columns if c.lower() in ("date", f"{table}_date", "infusion_date") or
             (table == "patients" and c.lower().endswith("_date"))]
    keep = [c for c in export.columns if c in fields or c in extra]
    return export.loc[rows, keep].reset_index(drop=True)


def _rename(df: pd.DataFrame, table: str, mapping: Mapping, log: Log) -> pd.DataFrame:
    """Apply the mapping's renames, then normalise headers ('Best Response' -> best_response)."""
    renames = {k.strip().lower(): v for k, v in mapping.columns.get(table, {}).items()}
    new = {}
    for col in df.columns:
        target = renames.get(str(col).strip().lower())
        if target is None:
            target = re.sub(r"[\s\-]+", "_", str(col).strip()).lower()
        if target != col:
            new[col] = target
    for old, target in new.items():
        log.rows.append({"table": table, "row": 1, "column": target, "original": old, "new": target,
                         "rule": "column renamed"})
    return df.rename(columns=new)


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

def parse_dates(values: pd.Series, fmt: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(dates, unreadable, ambiguous): ISO 8601 always; dd/mm/yyyy or mm/dd/yyyy only when declared."""
    text = values.astype(str).str.strip()
    empty = text.eq("")
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    iso = text.str.match(_ISO)
    dates[iso] = pd.to_datetime(text[iso].str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    parts = text.str.extract(_NUMERIC)
    numeric = parts[0].notna() & ~iso
    ambiguous = pd.Series(False, index=values.index)
    if numeric.any():
        if fmt == "iso":
            ambiguous = numeric
        else:
            day, month = (parts[0], parts[1]) if fmt == "day-first" else (parts[1], parts[0])
            year = parts[2].where(parts[2].str.len() == 4, "20" + parts[2])
            joined = year[numeric] + "-" + month[numeric].str.zfill(2) + "-" + day[numeric].str.zfill(2)
            dates[numeric] = pd.to_datetime(joined, format="%Y-%m-%d", errors="coerce")
    unreadable = ~empty & dates.isna() & ~ambiguous
    return dates, unreadable, ambiguous


def _date_problems(file: str, column: str, text: pd.Series, unreadable: pd.Series, ambiguous: pd.Series,
                   report: Report) -> None:
    """One problem per ambiguous or unreadable date cell (ambiguous ones are merged into one message later)."""
    for idx in text.index[ambiguous]:
        report.add("error", file, f"'{text[idx]}' is not an ISO 8601 date (YYYY-MM-DD) and the mapping file declares "
                   "no date_format, so it is ambiguous (03/04/2022 is 3 April or 4 March). Declare date_format: "
                   "day-first or month-first in mapping.yml, or write ISO dates.", int(idx) + 2, column,
                   value=text[idx], summary=_AMBIGUOUS)
    for idx in text.index[unreadable]:
        report.add("error", file, f"'{text[idx]}' cannot be read as a date.", int(idx) + 2, column,
                   value=text[idx], summary="cannot be read as a date.")


def _days_from(dates: pd.Series, origin: pd.Series) -> pd.Series:
    """Whole days from each row's infusion date (a float column, NaN where either date is missing)."""
    return (dates - origin).dt.days.astype("Float64").astype(float)


def _patient_dates(p: pd.DataFrame, file: str, fmt: str, report: Report, log: Log) -> pd.DataFrame:
    """infusion_date and the patients' *_date columns -> days (and age at infusion from a date of birth)."""
    p = p.copy()
    if "infusion_date" not in p:
        if any(c.endswith("_date") or c in _BIRTH for c in p.columns):
            report.add("error", file, "infusion_date is missing: every date is counted from it.", column="infusion_date")
        return p
    infusion, bad, amb = parse_dates(p["infusion_date"], fmt)
    _date_problems(file, "infusion_date", p["infusion_date"], bad, amb, report)
    for idx in p.index[p["infusion_date"].astype(str).str.strip().eq("")]:
        report.add("error", file, "is empty; every date of this patient is counted from it.", int(idx) + 2,
                   "infusion_date")
    for col in list(p.columns):
        target = contract.DATE_COLUMNS.get(col) or _day_column(col)
        if col in _BIRTH:
            dob, bad, amb = parse_dates(p[col], fmt)
            _date_problems(file, col, p[col], bad, amb, report)
            age = _completed_years(dob, infusion)
            if "age_years" not in p or p["age_years"].astype(str).str.strip().eq("").all():
                p["age_years"] = age.map(lambda a: "" if pd.isna(a) else str(int(a)))
                log.add("patients", p.index + 2, "age_years", p[col], p["age_years"], f"age at infusion from {col}")
            p = p.drop(columns=col)
        elif target is not None and col != "infusion_date":
            dates, bad, amb = parse_dates(p[col], fmt)
            _date_problems(file, col, p[col], bad, amb, report)
            days = _days_from(dates, infusion)
            p[target] = days.map(lambda d: "" if pd.isna(d) else f"{d:g}")
            log.add("patients", p.index + 2, target, p[col], p[target], f"days from infusion_date ({col})")
            p = p.drop(columns=col)
    return p


def _day_column(col: str) -> str | None:
    """'relapse_date' -> 'relapse_day' when the contract has such a day column."""
    if not col.endswith("_date"):
        return None
    stem = col[: -len("_date")]
    names = set(contract.PATIENTS.names)
    return next((c for c in (f"{stem}_day", f"{stem}_days") if c in names), None)


def _completed_years(born: pd.Series, on: pd.Series) -> pd.Series:
    """Completed years of age on a date (the birthday counts)."""
    years = on.dt.year - born.dt.year
    before = (on.dt.month < born.dt.month) | ((on.dt.month == born.dt.month) & (on.dt.day < born.dt.day))
    return (years - before.astype("Int64")).astype("Float64")


def _long_dates(df: pd.DataFrame, table: str, file: str, infusion: dict, fmt: str, report: Report,
                log: Log) -> pd.DataFrame:
    """The `date` column of a long table -> `day` from the patient's infusion date."""
    if "date" not in df:
        return df
    df = df.copy()
    dates, bad, amb = parse_dates(df["date"], fmt)
    _date_problems(file, "date", df["date"], bad, amb, report)
    origin = df["patient_id"].astype(str).str.strip().map(infusion)
    missing = origin.isna() & dates.notna()
    for idx in df.index[missing]:
        report.add("error", file, f"patient_id '{df.at[idx, 'patient_id']}' has no infusion_date in patients; its "
                   "dates cannot be counted.", int(idx) + 2, "patient_id",
                   summary="patient has no infusion_date in patients; its dates cannot be counted.")
    df["day"] = _days_from(dates, pd.to_datetime(origin)).map(lambda d: "" if pd.isna(d) else f"{d:g}")
    log.add(table, df.index + 2, "day", df["date"], df["day"], "days from infusion_date (date)")
    return df.drop(columns="date")


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

def _vocabulary(df: pd.DataFrame, table: str, mapping: Mapping, log: Log) -> pd.DataFrame:
    """Flags, booleans and categories to contract words, with the default and the centre's synonyms."""
    df = df.copy()
    spec = contract.TABLES[table]
    if table == "patients" and "best_response" in df:
        df = _response_with_mrd(df, log)
    for col in spec.columns:
        if col.name not in df or col.kind not in ("flag", "boolean", "category"):
            continue
        if col.name == "oxygen":
            continue
        text = df[col.name].astype(str).str.strip()
        if col.kind in ("flag", "boolean"):
            table_map = {**contract.FLAG_SYNONYMS, **mapping.values.get(col.name, {})}
            mapped = text.map(lambda v: table_map.get(_key(v)) if v else "")
            mapped = mapped.map(lambda v: v if v in ("", None) else (
                str(int(v)) if col.kind == "flag" else ("true" if int(v) else "false")))
        else:
            table_map = {**{_key(a): a for a in col.allowed}, **contract.VALUE_SYNONYMS.get(col.name, {}),
                         **mapping.values.get(col.name, {})}
            mapped = text.map(lambda v: table_map.get(_key(v)) if v else "")
        mapped = mapped.where(mapped.notna(), text)  # unknown words stay for validate to report
        changed = mapped.ne(text)
        log.add(table, df.index[changed] + 2, col.name, text[changed], mapped[changed], "vocabulary")
        df[col.name] = mapped
    return df


def _response_with_mrd(p: pd.DataFrame, log: Log) -> pd.DataFrame:
    """'MRD-negative CR' -> best_response CR and mrd_negative true (an empty mrd_negative only)."""
    keys = p["best_response"].astype(str).map(_key)
    hit = keys.map(contract.RESPONSE_WITH_MRD)
    rows = hit.dropna()
    if rows.empty:
        return p
    if "mrd_negative" not in p:
        p["mrd_negative"] = ""
    for idx, (response, negative) in rows.items():
        original = p.at[idx, "best_response"]
        p.at[idx, "best_response"] = response
        if str(p.at[idx, "mrd_negative"]).strip() == "":
            p.at[idx, "mrd_negative"] = "true" if negative else "false"
        log.add("patients", [idx + 2], "best_response", [original], [f"{response}; mrd_negative "
                f"{'true' if negative else 'false'}"], "response with MRD split")
    return p


def parse_oxygen(text: str) -> tuple[str | None, float | None, float | None]:
    """'HFNC 40L 50%' -> ('high_flow', 40.0, 50.0); 'room air' -> ('none', 0.0, 21.0); unknown -> (None, ...)."""
    raw = str(text).strip().lower()
    if not raw:
        return None, None, None
    flow = re.search(r"(\d+(?:\.\d+)?)\s*(?:l/min|lpm|l/m|l)\b", raw)
    fio2 = re.search(r"(\d+(?:\.\d+)?)\s*%", raw) or re.search(r"fio2\s*[:=]?\s*(0?\.\d+|\d+(?:\.\d+)?)", raw)
    words = re.sub(r"[\d.%/:=]+", " ", raw.replace("l/min", " ").replace("lpm", " "))
    words = re.sub(r"\bl\b|\bfio2\b", " ", words)
    device = None
    tokens = [_key(w) for w in re.split(r"[\s,;()+]+", words) if _key(w)]
    joined = "".join(tokens)
    for key in sorted(contract.OXYGEN_SYNONYMS, key=len, reverse=True):
        if key and (key in tokens or joined == key or joined.startswith(key)):
            device = contract.OXYGEN_SYNONYMS[key]
            break
    if device is None and joined and all(t in contract.OXYGEN_SYNONYMS for t in tokens):
        device = contract.OXYGEN_SYNONYMS[tokens[0]]
    f = float(flow.group(1)) if flow else None
    x = float(fio2.group(1)) if fio2 else None
    if x is not None and x <= 1:
        x *= 100
    if device == "none":
        f, x = (0.0 if f is None else f), (21.0 if x is None else x)
    return device, f, x


def _oxygen(d: pd.DataFrame, log: Log) -> pd.DataFrame:
    """Free-text oxygen support -> oxygen, o2_flow_l_min and fio2_pct (recorded flow/FiO2 cells are kept)."""
    if "oxygen" not in d:
        return d
    d = d.copy()
    allowed = set(contract.OXYGEN_DEVICES)
    for col in ("o2_flow_l_min", "fio2_pct"):
        if col not in d:
            d[col] = ""
    for idx, text in d["oxygen"].astype(str).items():
        if text.strip().lower().replace(" ", "_") in allowed or not text.strip():
            d.at[idx, "oxygen"] = text.strip().lower().replace(" ", "_")
            continue
        device, flow, fio2 = parse_oxygen(text)
        if device is None:
            continue  # left for validate to name
        d.at[idx, "oxygen"] = device
        new = [device]
        for col, value in (("o2_flow_l_min", flow), ("fio2_pct", fio2)):
            if value is not None and str(d.at[idx, col]).strip() == "":
                d.at[idx, col] = f"{value:g}"
                new.append(f"{col} {value:g}")
        log.add("daily", [idx + 2], "oxygen", [text], ["; ".join(new)], "oxygen text parsed")
    return d


# --------------------------------------------------------------------------------------------
# Drugs: vasopressor doses, tocilizumab and corticosteroids
# --------------------------------------------------------------------------------------------

_DOSE_HEADER = re.compile(r"^([a-z]+)_(ug|mcg|u|units)_(kg_)?min$")
_DOSE_TEXT = re.compile(r"([a-z][a-z\-]+)\s+(\d+(?:\.\d+)?)\s*(ug|mcg|µg|u|units)\s*(/\s*kg)?\s*/\s*min")
MEDICATION_COLUMNS = ("medications", "medication", "drugs", "meds")


def _drug_doses(d: pd.DataFrame, weight: pd.Series, file: str, report: Report) -> tuple[pd.DataFrame, list[str]]:
    """Per row, doses in ug/min (catecholamines) and U/min (vasopressin) from `<drug>_<unit>` columns and
    medication text; per-kg doses use the patient's weight_kg. Returns (doses, columns consumed)."""
    doses = pd.DataFrame(0.0, index=d.index, columns=list(contract.CATECHOLAMINES) + ["vasopressin"])
    seen = pd.DataFrame(False, index=d.index, columns=doses.columns)
    used = []
    for col in d.columns:
        m = _DOSE_HEADER.match(col)
        drug = contract.DRUG_SYNONYMS.get(m.group(1)) if m else None
        if drug not in doses.columns:
            continue
        used.append(col)
        value = pd.to_numeric(d[col].astype(str).str.strip().replace("", np.nan), errors="coerce")
        per_kg = m.group(3) is not None
        _add_dose(doses, seen, drug, value, per_kg, weight, file, col, report)
    for col in (c for c in MEDICATION_COLUMNS if c in d):
        for idx, text in d[col].astype(str).str.lower().items():
            for name, amount, _, kg in _DOSE_TEXT.findall(text):
                drug = contract.DRUG_SYNONYMS.get(_key(name))
                if drug in doses.columns:
                    one = pd.Series(float(amount), index=[idx])
                    _add_dose(doses, seen, drug, one, bool(kg), weight, file, col, report)
    return doses.where(seen), used


def _add_dose(doses, seen, drug, value: pd.Series, per_kg: bool, weight: pd.Series, file: str, col: str,
              report: Report) -> None:
    """Add one drug's doses (ug/min; per-kg doses times the patient's weight, an error without it)."""
    given = value.notna()
    if per_kg and drug != "vasopressin":
        w = weight.reindex(value.index)
        for idx in value.index[given & w.isna()]:
            report.add("error", file, "a dose per kg needs the patient's weight_kg in patients.", int(idx) + 2, col)
        value = value * w
    doses.loc[value.index[given], drug] += value[given].fillna(0)
    seen.loc[value.index[given], drug] = True


def _vasopressors(d: pd.DataFrame, weight: pd.Series, file: str, report: Report, log: Log) -> pd.DataFrame:
    """Drug doses -> vasopressors (count of catecholamines running), vasopressin (0/1), norepi_equiv_ug_min.

    Norepinephrine equivalents with the factors of Goradia et al. 2021 (contract.CATECHOLAMINES); a
    contract column the centre already gives is kept as recorded.
    """
    doses, used = _drug_doses(d, weight, file, report)
    if not used and not any(c in d for c in MEDICATION_COLUMNS):
        return d
    d = d.copy()
    any_dose = pd.Series(True, index=d.index)  # dose columns present: a blank dose means none that day
    catechol = doses[list(contract.CATECHOLAMINES)]
    derived = {
        "vasopressors": (catechol.fillna(0) > 0).sum(axis=1).astype(int).astype(str),
        "vasopressin": (doses["vasopressin"].fillna(0) > 0).astype(int).astype(str),
        "norepi_equiv_ug_min": (catechol.fillna(0) * pd.Series(contract.CATECHOLAMINES)).sum(axis=1).map(
            lambda x: f"{x:.4g}"),
    }
    for col, values in derived.items():
        current = d[col].astype(str).str.strip() if col in d else pd.Series("", index=d.index)
        fill = current.eq("") & any_dose
        d[col] = current.where(~fill, values)
        rule = ("norepinephrine equivalent (Goradia 2021: NE + epinephrine + phenylephrine/10 + dopamine/100 + "
                "metaraminol/8; per-kg doses x weight_kg)" if col == "norepi_equiv_ug_min" else "from drug doses")
        log.add("daily", d.index[fill] + 2, col, [""] * int(fill.sum()), d.loc[fill, col], rule)
    return d.drop(columns=used)


def _treatment_flags(d: pd.DataFrame, log: Log) -> pd.DataFrame:
    """Drug names in medication text -> the tocilizumab and steroids flags of the day."""
    cols = [c for c in MEDICATION_COLUMNS if c in d]
    if not cols:
        return d
    d = d.copy()
    text = d[cols].astype(str).agg(" ".join, axis=1).str.lower()
    words = text.map(lambda t: {contract.DRUG_SYNONYMS.get(_key(w)) for w in re.split(r"[^a-z\-]+", t) if w})
    for flag in ("tocilizumab", "steroids"):
        given = words.map(lambda s: flag in s)
        current = d[flag].astype(str).str.strip() if flag in d else pd.Series("", index=d.index)
        fill = current.eq("")
        d[flag] = current.where(~fill, given.astype(int).astype(str))
        log.add("daily", d.index[fill] + 2, flag, text[fill], d.loc[fill, flag], f"{flag} from medication names")
    return d.drop(columns=cols)


# --------------------------------------------------------------------------------------------
# Labs: analyte names and units
# --------------------------------------------------------------------------------------------

def _labs(l: pd.DataFrame, mapping: Mapping, log: Log) -> pd.DataFrame:
    """Analyte names to contract codes; units with a fixed factor converted to the canonical unit."""
    l = l.copy()
    if "analyte" in l:
        names = {**contract.ANALYTE_SYNONYMS, **mapping.analytes}
        text = l["analyte"].astype(str).str.strip()
        mapped = text.map(lambda v: names.get(_key(v), v))
        changed = mapped.ne(text)
        log.add("labs", l.index[changed] + 2, "analyte", text[changed], mapped[changed], "analyte name")
        l["analyte"] = mapped
    if not {"analyte", "unit", "value"} <= set(l):
        return l
    for (analyte, unit), idx in l.groupby(["analyte", "unit"]).groups.items():
        if analyte not in contract.ANALYTES:
            continue
        target = contract.ANALYTES[analyte][0]
        factor = units.factor(analyte, unit)
        if factor is None or (units.same_unit(unit, target) and unit == target):
            continue
        value = pd.to_numeric(l.loc[idx, "value"], errors="coerce")
        new = (value * factor).map(lambda x: "" if pd.isna(x) else f"{x:.6g}")
        new = new.where(value.notna(), l.loc[idx, "value"])
        log.add("labs", idx + 2, "value", l.loc[idx, "value"], new, f"{analyte} '{unit}' -> '{target}' (x {factor:g})")
        l.loc[idx, "value"] = new
        l.loc[idx, "unit"] = target
    return l


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def log_path(out: Path) -> Path:
    """The conversion log beside OUT (never inside it: it holds the original dates and identifiers)."""
    out = Path(out)
    return out.parent / f"{out.name}_conversion_log.csv"


def prepare(raw: Path, out: Path, mapping_file: Path | None = None) -> tuple[Report, Log]:
    """Convert a dated export to the contract; write OUT and its log only when nothing needs the centre."""
    raw, out = Path(raw), Path(out)
    report, log = Report(str(raw)), Log()
    if mapping_file is None and raw.is_dir() and (raw / "mapping.yml").exists():
        mapping_file = raw / "mapping.yml"
    mapping = Mapping.read(mapping_file, report)
    tables = {name: _rename(df, name, mapping, log) for name, df in _read_raw(raw, mapping, report).items()}
    if "patients" not in tables or report.errors:
        return report, log
    files = {name: mapping.files.get(name, f"{name}.csv") for name in tables}
    p = _patient_dates(tables["patients"], files["patients"], mapping.date_format, report, log)
    ids = p["patient_id"].astype(str).str.strip() if "patient_id" in p else pd.Series(dtype=str)
    infusion = dict(zip(ids, parse_dates(tables["patients"]["infusion_date"], mapping.date_format)[0])) \
        if "infusion_date" in tables["patients"] else {}
    weight = _weights(p)
    out_tables = {"patients": _vocabulary(p, "patients", mapping, log)}
    for name in ("kinetics", "daily", "labs"):
        if name not in tables:
            continue
        df = _long_dates(tables[name], name, files[name], infusion, mapping.date_format, report, log)
        if name == "daily":
            w = df["patient_id"].astype(str).str.strip().map(weight) if "patient_id" in df else pd.Series(dtype=float)
            df = _treatment_flags(_vasopressors(_oxygen(df, log), w, files[name], report, log), log)
        if name == "labs":
            df = _labs(df, mapping, log)
        out_tables[name] = _vocabulary(df, name, mapping, log)
    _one_ambiguity_message(report)
    if report.errors:
        return report, log
    out_tables = {name: _contract_columns(df, name, log) for name, df in out_tables.items()}
    _write(out, out_tables, raw, log)
    return report, log


def _one_ambiguity_message(report: Report) -> None:
    """Ambiguous dates in many columns and files are one problem with one fix: say it once, with where."""
    ambiguous = [p for p in report.problems if (p.summary or "").startswith(_AMBIGUOUS)]
    if not ambiguous:
        return
    report.problems = [p for p in report.problems if p not in ambiguous]
    where: dict[tuple[str, str], list] = {}
    for p in ambiguous:
        where.setdefault((p.file, p.column), []).append(p)
    listed = "; ".join(f"{file}, column '{col}' ({len(ps)} row{'s' if len(ps) > 1 else ''}, first row {ps[0].row}: "
                       f"'{ps[0].value}')" for (file, col), ps in where.items())
    report.add("error", "mapping.yml", f"{_AMBIGUOUS} Found in {listed}.")


def _weights(p: pd.DataFrame) -> dict[str, float]:
    """patient_id -> weight_kg from the raw patients table (used for per-kg doses, never written to OUT)."""
    col = next((c for c in ("weight_kg", "weight", "body_weight_kg") if c in p), None)
    if col is None or "patient_id" not in p:
        return {}
    w = pd.to_numeric(p[col], errors="coerce")
    return dict(zip(p["patient_id"].astype(str).str.strip(), w))


def _contract_columns(df: pd.DataFrame, table: str, log: Log) -> pd.DataFrame:
    """Keep only the contract's columns, in contract order; log every column dropped."""
    names = contract.TABLES[table].names
    for col in df.columns:
        if col not in names:
            why = ("REDCap structural column" if col.startswith("redcap_") or col.endswith("_complete") else
                   "calendar date or identifier" if _looks_private(col) else "not in the contract")
            log.rows.append({"table": table, "row": 1, "column": col, "original": col, "new": "",
                             "rule": f"column dropped ({why})"})
    return df[[c for c in names if c in df.columns]]


def _looks_private(col: str) -> bool:
    """True for a column name with an identifier or date word (contract.FORBIDDEN_COLUMN_WORDS)."""
    words = col.lower().split("_")
    return any(w in words for w in contract.FORBIDDEN_COLUMN_WORDS)


def _write(out: Path, tables: dict[str, pd.DataFrame], raw: Path, log: Log) -> None:
    """Write OUT atomically (a temporary folder renamed into place) and the log beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    for name, df in tables.items():
        df.to_csv(tmp / f"{name}.csv", index=False)
    meta_src = raw / "cohort.yml" if raw.is_dir() else None
    if meta_src is not None and meta_src.exists():
        shutil.copyfile(meta_src, tmp / "cohort.yml")
    else:
        (tmp / "cohort.yml").write_text(yaml.safe_dump({"name": raw.stem, "simulated": False}), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.frame().to_csv(log_path(out), index=False)

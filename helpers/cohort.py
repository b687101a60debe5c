"""Load and validate a cohort (a folder of CSV files or one .xlsx workbook) into one Cohort object.

Every problem is collected before anything stops, each naming the file (and sheet), the row
(spreadsheet numbering: the header is row 1), the column, the value found and what was expected.
Types are parsed here; ranges, vocabularies and uniqueness are checked with pandera schemas built
from `helpers.contract`. Patient identifiers are replaced by pseudonyms (P01, P02, ... in file
order) before any analysis sees them, so no identifier can reach the published book.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers import contract, plausibility
from helpers.contract import Column, Table

WORKBOOK_SUFFIXES = (".xlsx",)


@dataclass(frozen=True)
class Problem:
    """One finding of validation, in the user's words."""

    level: str  # "error", "warning" or "note" (information: nothing to fix)
    file: str
    message: str
    row: int | None = None
    column: str | None = None
    value: object = None  # the value found (report CSV; grouped lines show the values found)
    summary: str | None = None  # the message without row-specific values, used when identical problems group

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{self.level.upper()}: {where}: {self.message}"


@dataclass
class Report:
    """All problems found in a cohort; buildable when there is no error."""

    source: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, level: str, file: str, message: str, row: int | None = None,
            column: str | None = None, value: object = None, summary: str | None = None) -> None:
        self.problems.append(Problem(level, file, message, row, column, value, summary))

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "note"]

    def grouped(self) -> list[tuple[Problem, list[int], list[float]]]:
        """Identical problems (same level, file, column and message) as one entry with their rows and values."""
        groups: dict[tuple, tuple[Problem, list[int], list[float]]] = {}
        for p in self.problems:
            key = (p.level, p.file, p.column, p.summary or p.message, p.row is None)
            if key not in groups:
                groups[key] = (p, [], [])
            if p.row is not None:
                groups[key][1].append(p.row)
            if p.value is not None:
                groups[key][2].append(p.value)
        return list(groups.values())

    def lines(self, level: str) -> list[str]:
        """The grouped lines of one level ('warning'), as `text` shows them: what a build's log prints."""
        return [_grouped_line(*g) for g in self.grouped() if g[0].level == level]

    def text(self) -> str:
        """Human-readable report: errors first, then warnings, then notes, one line per distinct problem."""
        lines = [f"Cohort: {self.source}"]
        order = {"error": 0, "warning": 1, "note": 2}
        for first, rows, values in sorted(self.grouped(), key=lambda g: order.get(g[0].level, 3)):
            lines.append(_grouped_line(first, rows, values))
        verdict = "buildable" if self.ok else "NOT buildable"
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s): {verdict}.")
        return "\n".join(lines)

    def to_csv(self, path: Path) -> Path:
        """Every problem, one per row (level, file, row, column, message): the full list behind the grouped text."""
        rows = [{"level": p.level, "file": p.file, "row": p.row, "column": p.column, "value": p.value,
                 "message": p.message} for p in self.problems]
        frame = pd.DataFrame(rows, columns=["level", "file", "row", "column", "value", "message"])
        frame["row"] = frame["row"].astype("Int64")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        return path


def _grouped_line(first: Problem, rows: list[int], values: list[float] | None = None, shown: int = 3) -> str:
    """'ERROR: labs.csv, rows 10, 26, 42 and 237 more, column 'unit': ...' (a single row reads as before)."""
    if len(rows) <= 1:
        found = _found(values) if first.summary is None else ""
        return str(Problem(first.level, first.file, first.message, rows[0] if rows else None, first.column)) + found
    found = _found(values)
    if len(rows) <= shown + 1:
        listed = ", ".join(map(str, rows[:-1])) + f" and {rows[-1]}"
    else:
        listed = ", ".join(map(str, rows[:shown])) + f" and {len(rows) - shown} more"
    where = f"{first.file}, rows {listed}"
    if first.column is not None:
        where += f", column '{first.column}'"
    return f"{first.level.upper()}: {where}: {first.summary or first.message}{found}"


def _found(values: list | None, shown: int = 3) -> str:
    """' Found 5.8 to 12.3.' for numbers, " Found 'ten', 'x' and 4 more." for text ('' when none)."""
    if not values:
        return ""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        return f" Found {lo:g}." if lo == hi else f" Found {lo:g} to {hi:g}."
    distinct = list(dict.fromkeys(str(v) for v in values))
    listed = ", ".join(f"'{v}'" for v in distinct[:shown])
    return f" Found {listed}" + (f" and {len(distinct) - shown} more." if len(distinct) > shown else ".")


class CohortError(ValueError):
    """Raised when a cohort does not follow the data contract; carries the full report."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.text())


_DEFAULTS = {spec.name: spec.default for spec in contract.SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Analysis choices that differ by study (cohort.yml); the defaults are those of helpers.contract.SETTINGS."""

    severe_crs_grade: int = _DEFAULTS["severe_crs_grade"]
    crs_system: str = _DEFAULTS["crs_system"]
    landmark_day: float = _DEFAULTS["landmark_day"]
    remission_responses: tuple[str, ...] = tuple(_DEFAULTS["remission_responses"])
    censor_at_hsct: bool = _DEFAULTS["censor_at_hsct"]
    episode_gap_days: int = _DEFAULTS["episode_gap_days"]


DEFERRED = ("daily", "labs")  # the large tables: stored apart in the load cache, read when a chapter first uses them


@dataclass(frozen=True)
class Stored:
    """A table of a cached cohort not yet read (`remember`): its file, its size, and whether it grades CRS."""

    file: Path
    rows: int
    grades_crs: bool = False
    source: Path | None = None  # the cohort's files: validated again if the stored table cannot be read

    def read(self, table: str) -> pd.DataFrame:
        """The table from its file, or from a fresh validation of the cohort when the file is unreadable."""
        try:
            with open(self.file, "rb") as f:
                return pickle.load(f)
        except Exception:  # removed by a cache clean, or from other library versions
            report, cohort = validate(self.source)
            if cohort is None:
                raise CohortError(report) from None
            return getattr(cohort, table)


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: pseudonymised tables (None when an optional table is absent) and settings.

    Loaded from the cache, its large tables (DEFERRED) are read on first use: a chapter that uses neither
    does not pay for reading a 5,000-patient lab record."""

    name: str
    simulated: bool
    source: str
    settings: Settings
    patients: pd.DataFrame
    kinetics: pd.DataFrame | None = None
    daily: pd.DataFrame | None = None
    labs: pd.DataFrame | None = None
    seed: int | None = None
    enrolled: int | None = None
    key: str = ""  # content key of the files it was loaded from (load_cohort); "" built in memory or with other tables

    def __getattribute__(self, name: str) -> object:
        """A field's value; a DEFERRED table not yet read is read now, and kept."""
        value = object.__getattribute__(self, name)
        if type(value) is Stored:
            value = value.read(name)
            object.__setattr__(self, name, value)
        return value

    def has(self, table: str) -> bool:
        """True when the optional table is present and has rows (a table not yet read is not read for this)."""
        df = object.__getattribute__(self, table)
        return df.rows > 0 if type(df) is Stored else df is not None and len(df) > 0

    @property
    def grades_crs(self) -> bool:
        """True when the daily record can be graded for CRS (it has temperatures: helpers.crs.GRADING_NEEDS)."""
        daily = object.__getattribute__(self, "daily")
        return daily.grades_crs if type(daily) is Stored else _grades_crs(daily)

    def has_columns(self, *columns: str) -> bool:
        """True when every named patients column is present with at least one value."""
        return all(c in self.patients and self.patients[c].notna().any() for c in columns)


def _grades_crs(daily: pd.DataFrame | None) -> bool:
    """True when a daily record has rows and a value in every column CRS grading needs."""
    from helpers.crs import GRADING_NEEDS

    return daily is not None and len(daily) > 0 and all(c in daily and daily[c].notna().any() for c in GRADING_NEEDS)


# --------------------------------------------------------------------------------------------
# Reading raw tables
# --------------------------------------------------------------------------------------------

def _read_csv(path: Path, report: Report) -> pd.DataFrame | None:
    """Read a CSV as text. A UTF-8 byte-order mark is accepted; other encodings and ';' are refused."""
    name = path.name
    raw = path.read_bytes()
    if not raw.strip():
        report.add("error", name, "the file is empty; it needs at least the header row.")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        report.add("error", name, "the file is not UTF-8 (this row has a character that cannot be read); it "
                   "looks like Latin-1/Windows-1252. Re-save it as 'CSV UTF-8 (comma delimited)'.", row=line)
        return None
    header = (text.split("\n", 1)[0].splitlines() or [""])[0]  # the first line, without splitting them all
    if ";" in header and "," not in header:
        report.add("error", name, "the file is separated by semicolons; the contract needs commas. "
                   "Re-save it as 'CSV UTF-8 (comma delimited)' or replace ';' by ','.")
        return None
    names = next(csv.reader([header]))
    if len(raw) >= ARROW_MIN_BYTES and (df := _read_csv_arrow(raw, names)) is not None:
        return df
    from io import BytesIO
    try:  # from the bytes (now known to be UTF-8): pandas reads them twice as fast as the decoded text
        df = pd.read_csv(BytesIO(raw), encoding="utf-8-sig", dtype=str, keep_default_na=False, skipinitialspace=False,
                         low_memory=False)  # in one pass, not chunks: all text, so no type to infer per chunk
    except pd.errors.ParserError as exc:
        report.add("error", name, f"the file cannot be read as CSV: {exc}")
        return None
    if len(names) == df.shape[1]:
        df.columns = [n.strip() for n in names]  # pandas renames a repeated header to 'x.1'; keep it visible
    return df


ARROW_MIN_BYTES = 4 << 20  # files from this size are read with pyarrow (a 5,000-patient labs.csv: 45 MB)


def _read_csv_arrow(raw: bytes, names: list[str]) -> pd.DataFrame | None:
    """A large CSV read with pyarrow's reader, each column as categories of its texts; None when pyarrow is
    not installed or the file is not a plain rectangle of cells (pandas then reads it, and words its error).

    The same cells as pandas' reader with `dtype=str, keep_default_na=False` (every cell its text, an empty
    cell ''), about three times as fast, and the categories spare the parser factorising a million texts
    again (`_parse_column` parses each distinct text once)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    width, pool = len(names), pa.system_memory_pool()  # malloc's: freed, the file's buffers go back (jemalloc keeps them)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw), memory_pool=pool,
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(width)], skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(width)},
                                                 null_values=[], strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a row of another width, a stray quote: pandas says which
        return None
    columns = {}
    for i, column in enumerate(table.columns):
        encoded = pc.dictionary_encode(column.combine_chunks(memory_pool=pool), memory_pool=pool)
        columns[i] = pd.Categorical.from_codes(encoded.indices.to_numpy(zero_copy_only=False),
                                               encoded.dictionary.to_pandas().astype(object))
    df = pd.DataFrame(columns)
    df.columns = [n.strip() for n in names]
    return df


def _read_sources(path: Path, report: Report) -> tuple[dict[str, pd.DataFrame], dict | None, str]:
    """Raw text tables keyed by table name, the parsed cohort.yml (or None) and the label files use."""
    tables: dict[str, pd.DataFrame] = {}
    if path.is_file() and path.suffix.lower() in WORKBOOK_SUFFIXES:
        try:
            sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False, header=None)
            sheets = {name: _header_from_first_row(df) for name, df in sheets.items()}
        except Exception as exc:  # openpyxl raises many types for corrupt files
            report.add("error", path.name, f"the workbook cannot be opened: {exc}")
            return {}, None, path.name
        for sheet, df in sheets.items():
            key = sheet.strip().lower()
            if key in contract.TABLES:
                tables[key] = df
        meta = None
        if "cohort" in {s.strip().lower() for s in sheets}:
            sheet = next(s for s in sheets if s.strip().lower() == "cohort")
            meta = _meta_from_sheet(sheets[sheet])
        return tables, meta, path.name
    if not path.is_dir():
        report.add("error", str(path.name), "not found: give a folder of CSV files or an .xlsx workbook.")
        return {}, None, str(path)
    for table in contract.TABLES.values():
        file = path / table.filename
        if file.exists():
            df = _read_csv(file, report)
            if df is not None:
                tables[table.name] = df
    meta = None
    yml = path / "cohort.yml"
    if yml.exists():
        try:
            meta = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            report.add("error", "cohort.yml", f"cannot be read as YAML: {exc}")
            meta = {}
    return tables, meta, path.name


def _header_from_first_row(df: pd.DataFrame) -> pd.DataFrame:
    """A sheet read without a header: its first row becomes the column names as written (repeats kept)."""
    if df.empty:
        return pd.DataFrame()
    body = df.iloc[1:].reset_index(drop=True)
    body.columns = [str(c).strip() for c in df.iloc[0]]
    return body


def _meta_from_sheet(df: pd.DataFrame) -> dict:
    """A 'cohort' sheet has two columns, key and value (values parsed as YAML scalars)."""
    meta = {}
    for _, row in df.iterrows():
        if len(row) >= 2 and str(row.iloc[0]).strip():
            meta[str(row.iloc[0]).strip()] = yaml.safe_load(str(row.iloc[1])) if str(row.iloc[1]) else None
    return meta


def _label(table: Table, source_label: str, workbook: bool) -> str:
    return f"{source_label} (sheet '{table.name}')" if workbook else table.filename


# --------------------------------------------------------------------------------------------
# Parsing columns by kind
# --------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "1.0"}
_FALSE = {"0", "false", "0.0"}


NA_WORDS = {"", "na", "nan", "n/a"}


def _parse_column(values: pd.Series, col: Column, file: str, report: Report) -> pd.Series:
    """Parse one text column into its kind, reporting every cell that does not fit.

    Each distinct text is parsed once (a long table repeats the same few category, flag and unit words
    many times), then spread back to the rows. Cells that do not parse as they stand are stripped of
    surrounding spaces, lower-cased for the missing-value words, and parsed again.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # a large file's column, already coded (_read_csv_arrow)
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories.to_numpy(dtype=object)
    else:
        if pd.api.types.infer_dtype(values, skipna=False) != "string":  # read as text, so nearly always strings
            values = values.astype(str)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    raw = pd.Series(uniques, dtype=object).astype(str)
    if col.kind == "text":
        raw = raw.str.strip()
    parsed, expected = _parse_cells(raw.where(raw.ne("")), col)
    parsed = parsed.astype(object)
    retry = parsed.isna() & raw.ne("")
    bad = pd.Series(False, index=raw.index)
    text = raw
    if retry.any():
        text = raw.copy()
        text[retry] = raw[retry].str.strip()
        missing = text[retry].str.lower().isin(NA_WORDS)
        again, _ = _parse_cells(text[retry].where(~missing), col)
        parsed.loc[retry] = again.astype(object).where(again.notna(), None)
        bad.loc[retry] = ~missing & again.isna()
    parsed = parsed.where(~bad)
    if col.kind in ("number", "integer", "flag"):  # spread floats, not Python objects: long tables stay fast
        numbers = np.append(pd.to_numeric(parsed, errors="coerce").to_numpy(dtype=float), np.nan)
        full = pd.Series(numbers.take(codes), index=values.index)  # code -1 (missing) takes the final NaN
    else:  # typed once per distinct text, then spread (code -1, missing, takes the final None)
        typed = _typed(pd.Series(np.append(np.asarray(parsed, dtype=object), None), dtype=object), col)
        spread = typed.to_numpy() if typed.dtype == object else typed.array  # a plain array: a Series of a
        full = pd.Series(spread.take(codes), index=values.index)  # wrapped one scans it for missing values
    if bad.any():
        bad_rows = np.flatnonzero(bad.to_numpy()[codes] & (codes >= 0))
        shown = text.to_numpy()
        for pos in bad_rows:
            found = shown[codes[pos]]
            report.add("error", file, f"found '{found}', expected {expected}.", row=int(values.index[pos]) + 2,
                       column=col.name, value=found, summary=f"expected {expected}.")
    return _typed(full, col) if col.kind in ("number", "integer", "flag") else full


def _parse_cells(text: pd.Series, col: Column) -> tuple[pd.Series, str]:
    """Parsed values (NaN/None where a cell does not fit) and what the column expects, in words."""
    if col.kind == "text":
        return text, "text"
    if col.kind in ("number", "integer"):
        x = pd.to_numeric(text, errors="coerce").astype("float64")
        x = x.where(np.isfinite(x))
        if col.kind == "integer":
            return x.where(x == np.round(x)), "a whole number"
        return x, "a number"
    if col.kind in ("flag", "boolean"):
        mapping = {**{t: True for t in _TRUE}, **{f: False for f in _FALSE}}
        words = "0 or 1 (true/false also accepted)" if col.kind == "flag" else "true or false (1/0 also accepted)"
        return text.str.lower().map(mapping), words
    if col.kind == "category":
        lookup = {a.lower(): a for a in col.allowed}
        norm = text.str.lower()
        if col.name == "oxygen":
            norm = norm.str.split().str.join("_")
        return norm.map(lookup), "one of " + ", ".join(col.allowed)
    raise ValueError(f"unknown column kind {col.kind!r} in the contract")


def _typed(series: pd.Series, col: Column) -> pd.Series:
    if col.kind == "number":
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if col.kind in ("integer", "flag"):
        return pd.to_numeric(series, errors="coerce").astype("Int64")
    if col.kind == "boolean":
        return series.astype("boolean")
    return series.astype("string").astype(object).where(series.notna(), None)


# --------------------------------------------------------------------------------------------
# Checks on one table
# --------------------------------------------------------------------------------------------

def _schema(table: Table):
    """A pandera schema for ranges, vocabularies and not-null constraints of parsed columns."""
    import pandera.pandas as pa

    columns = {}
    for c in table.columns:
        checks = []
        if c.minimum is not None:
            checks.append(pa.Check.ge(c.minimum, error=f"at least {c.minimum:g}"))
        if c.maximum is not None:
            checks.append(pa.Check.le(c.maximum, error=f"at most {c.maximum:g}"))
        columns[c.name] = pa.Column(checks=checks, nullable=c.nullable, required=False, coerce=False)
    return pa.DataFrameSchema(columns, strict=False)


def _check_schema(df: pd.DataFrame, table: Table, file: str, report: Report,
                  parse_failed: set[tuple[int, str]]) -> None:
    """Run the pandera schema lazily and turn every failure case into a Problem."""
    import pandera.pandas as pa

    try:
        with warnings.catch_warnings():  # pandera's own concat of failure cases trips a pandas deprecation
            warnings.simplefilter("ignore", FutureWarning)
            _schema(table).validate(df, lazy=True, inplace=True)  # no coercion: nothing to change, no copy
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for _, case in cases.iterrows():
            if case["index"] is None or pd.isna(case["index"]):
                continue
            row = int(case["index"]) + 2
            column = str(case["column"])
            if (row, column) in parse_failed:
                continue  # already reported as a wrong type
            check = str(case["check"])
            if check == "not_nullable":
                report.add("error", file, "is empty; this column needs a value in every row.", row, column)
            else:
                unit = table.column(column).unit
                unit = f" {unit}" if unit and unit != "%" else unit
                value = case["failure_case"]
                shown = f"{value:g}" if isinstance(value, (int, float)) else str(value)
                report.add("error", file, f"found {shown}, expected {check}{unit}.", row, column,
                           value=value, summary=f"expected {check}{unit}.")


def _looks_identifying(column: str) -> bool:
    """True for names like 'date_of_birth', 'MRN', 'patient name' (words from contract.FORBIDDEN_COLUMN_WORDS)."""
    words = column.lower().replace("-", "_").replace(" ", "_").split("_")
    return any(word in words for word in contract.FORBIDDEN_COLUMN_WORDS)


def _drop_blank_rows(raw: pd.DataFrame, file: str, report: Report) -> pd.DataFrame:
    """Rows with every cell empty (a spreadsheet's trailing ',,,,' lines) are dropped with one note each."""
    if raw.empty or raw.shape[1] == 0:
        return raw
    first = raw.iloc[:, 0].isin(["", " ", "  ", "\t"])  # hashing, not string operations: long tables stay fast
    if not first.any():
        return raw
    candidates = raw[first]
    blank = candidates.apply(lambda c: c.astype(str).str.strip().eq("")).all(axis=1)
    for idx in candidates.index[blank]:
        report.add("note", file, "empty row: ignored.", int(idx) + 2)
    return raw.drop(index=candidates.index[blank])


def _refuse_repeated_headers(columns: list[str], file: str, report: Report) -> bool:
    """A column name given twice (case and spaces ignored) is refused: which copy holds the data is unknowable."""
    seen: dict[str, list[int]] = {}
    for i, c in enumerate(columns):
        seen.setdefault(str(c).lower(), []).append(i + 1)
    repeated = {name: pos for name, pos in seen.items() if len(pos) > 1}
    for name, pos in repeated.items():
        where = ", ".join(map(str, pos[:-1])) + f" and {pos[-1]}"
        report.add("error", file, f"the header names this column {len(pos)} times (columns {where}); each column "
                   "may appear once. Remove or rename the repeated column.", column=columns[pos[0] - 1])
    return bool(repeated)


def _is_redcap_structural(column: str) -> bool:
    """REDCap's own export columns (event, repeat instrument/instance, access group, form status)."""
    name = str(column).strip().lower()
    return name in contract.REDCAP_COLUMNS or name.startswith("redcap_") or name.endswith("_complete")


def _check_table(raw: pd.DataFrame, table: Table, file: str, report: Report,
                 later: Callable[[Callable[[Report], None]], None] | None = None) -> pd.DataFrame | None:
    """Columns present, forbidden and unknown columns, parsed types, ranges and duplicate keys (the last two
    only read the parsed table: handed to `later`, when given, to be run afterwards; `Checks`)."""
    known_lower = {c.lower(): c for c in table.names}
    raw = raw.rename(columns=lambda c: known_lower.get(str(c).strip().lower(), str(c).strip()))
    columns = list(raw.columns)
    n_before = len(report.errors)
    if _refuse_repeated_headers(columns, file, report):
        return None
    structural = [c for c in columns if c not in table.names and _is_redcap_structural(c)]
    for col in structural:
        report.add("note", file, "REDCap structural column: ignored (not data; never published).", column=col)
    columns = [c for c in columns if c not in structural]
    forbidden = [c for c in columns if _looks_identifying(c)]
    for col in forbidden:
        report.add("error", file, "looks like a direct identifier or calendar date; the book never needs it "
                   "and must not publish it. Remove the column (times are days from infusion).", column=col)
    for c in table.columns:
        if c.required and c.name not in columns:
            report.add("error", file, "required column is missing.", column=c.name)
    known = set(table.names)
    for col in columns:
        if col not in known and col not in forbidden:
            report.add("warning", file, "unknown column: ignored, and never published.", column=col)
    if len(report.errors) > n_before:
        return None
    raw = _drop_blank_rows(raw, file, report)
    if raw.empty:
        if table.required:
            report.add("error", file, "has a header but no data rows.")
        else:
            report.add("warning", file, f"has no data rows: treated as absent ({table.used_by} skipped).")
        return None
    before = {(p.row, p.column) for p in report.errors if p.file == file}
    parsed = pd.DataFrame(index=raw.index)
    for c in table.columns:
        if c.name in raw:
            parsed[c.name] = _parse_column(raw[c.name], c, file, report)
    failed = {(p.row, p.column) for p in report.errors if p.file == file} - before  # this file's cells
    def ranges_and_keys(to: Report) -> None:
        _check_ranges_and_keys(parsed, table, file, to, failed)

    if later is None:
        ranges_and_keys(report)
    else:
        later(ranges_and_keys)
    return parsed


def _check_ranges_and_keys(parsed: pd.DataFrame, table: Table, file: str, report: Report,
                           parse_failed: set[tuple[int, str]]) -> None:
    """The pandera schema (ranges, vocabularies, values required) and duplicate keys of one parsed table."""
    _check_schema(parsed, table, file, report, parse_failed)
    if table.key and all(k in parsed for k in table.key):
        dup = parsed.duplicated(list(table.key), keep="first") & parsed[list(table.key)].notna().all(axis=1)
        for idx in parsed.index[dup]:
            keyval = ", ".join(f"{k}={parsed.at[idx, k]}" for k in table.key)
            report.add("error", file, f"duplicate row for {keyval}; each {' + '.join(table.key)} may appear once.",
                       row=int(idx) + 2, column=table.key[-1],
                       summary=f"duplicate row; each {' + '.join(table.key)} may appear once.")


# --------------------------------------------------------------------------------------------
# Checks across tables, units and settings
# --------------------------------------------------------------------------------------------

def _check_units(labs: pd.DataFrame, file: str, report: Report, d_dimer_units: str | None = None) -> pd.DataFrame:
    """Convert each (analyte, unit) pair to the canonical unit with pint (one message per pair, not per row).

    Spelling variants of the canonical unit are accepted silently; other units of the same quantity are
    converted (warning, grouped); a D-dimer unit without FEU/DDU is refused unless cohort.yml declares
    `d_dimer_units`; anything else is refused.
    """
    from helpers import units

    labs = labs.copy(deep=False)  # two columns are replaced below, never written into: the rest is shared
    analyte_codes, analytes = pd.factorize(labs["analyte"])
    unit_codes, found_units = pd.factorize(labs["unit"])
    width = len(found_units) + 1
    pair = analyte_codes.astype(np.int64) * width + (unit_codes + 1)  # unit code 0 = missing unit
    pairs, inverse = np.unique(pair, return_inverse=True)
    factors = np.ones(len(pairs))
    targets = np.empty(len(pairs), dtype=object)
    for k, code in enumerate(pairs):
        a, u = divmod(int(code), width)
        if code < 0 or u == 0:  # analyte or unit missing: already reported by the column checks
            continue
        analyte, unit = analytes[a], str(found_units[u - 1]).strip()
        factors[k], targets[k] = _unit_pair(analyte, unit, np.flatnonzero(inverse == k), labs.index, file,
                                            report, d_dimer_units)
    ok = pd.notna(targets[inverse])
    labs["value"] = np.where(ok, labs["value"].to_numpy(dtype=float) * factors[inverse], labs["value"].to_numpy())
    labs["unit"] = np.where(ok, targets[inverse], labs["unit"].to_numpy(dtype=object))
    return labs


def _unit_pair(analyte: str, unit: str, positions: np.ndarray, index: pd.Index, file: str, report: Report,
               d_dimer_units: str | None) -> tuple[float, str | None]:
    """(factor, canonical unit) for one analyte-unit pair of labs, reporting on its rows; (1, None) if refused."""
    from helpers import units

    target = contract.ANALYTES[analyte][0]
    if units.same_unit(unit, target):
        return 1.0, target
    rows = [int(i) + 2 for i in index[positions]]
    factor = units.factor(analyte, unit)
    shown = f"{unit}'"
    if factor is None and units.is_ambiguous(analyte, unit):
        factor = units.convention_factor(analyte, unit, d_dimer_units)
        if factor is None:
            for row in rows:
                report.add("error", file, f"{analyte} in '{unit}' is ambiguous: D-dimer is reported in FEU "
                           "(fibrinogen-equivalent units) or DDU (D-dimer units), about a factor 2 apart. Write "
                           f"'{unit} FEU' or '{unit} DDU', or declare it for the whole cohort in cohort.yml "
                           "(d_dimer_units: FEU or DDU).", row=row, column="unit")
            return 1.0, None
        shown = f"{unit}' (declared {d_dimer_units} in cohort.yml)"
    if factor is None:
        for row in rows:
            report.add("error", file, f"unit '{unit}' does not match {analyte}'s canonical unit '{target}' "
                       f"and has no unambiguous conversion; convert the value to {target}.", row=row, column="unit")
        return 1.0, None
    level = "note" if factor == 1 else "warning"
    for row in rows:
        report.add(level, file, f"{analyte} in '{shown} converted to '{target}' (x {factor:g}).", row=row,
                   column="unit")
    return factor, target


def _check_patients(p: pd.DataFrame, file: str, report: Report, settings: Settings) -> None:
    """Rules within patients.csv that involve more than one column."""
    if {"pfs_days", "os_days"} <= set(p):
        bad = p["pfs_days"] > p["os_days"]
        for idx in p.index[bad.fillna(False)]:
            report.add("error", file, f"pfs_days ({p.at[idx, 'pfs_days']:g}) is after os_days "
                       f"({p.at[idx, 'os_days']:g}); progression-free time cannot exceed overall time.",
                       int(idx) + 2, "pfs_days", value=float(p.at[idx, "pfs_days"]),
                       summary="pfs_days is after os_days; progression-free time cannot exceed overall time.")
    if ("pfs_days" in p) != ("pfs_event" in p):
        report.add("error", file, "pfs_days and pfs_event go together: give both or neither.",
                   column="pfs_event" if "pfs_days" in p else "pfs_days")
    if "mrd_negative" in p:
        not_rem = ~p["best_response"].isin(settings.remission_responses) & p["best_response"].notna()
        for idx in p.index[not_rem & p["mrd_negative"].notna()]:
            report.add("error", file, f"mrd_negative is set but best_response is {p.at[idx, 'best_response']}; "
                       "leave it blank for patients not in remission.", int(idx) + 2, "mrd_negative")
    if "remission_day" in p:
        not_rem = ~p["best_response"].isin(settings.remission_responses) & p["best_response"].notna()
        for idx in p.index[not_rem & p["remission_day"].notna()]:
            report.add("error", file, f"remission_day is set but best_response is {p.at[idx, 'best_response']}; "
                       "leave it blank for patients not in remission.", int(idx) + 2, "remission_day")
        end = p["pfs_days"] if "pfs_days" in p else p["os_days"]
        for idx in p.index[(p["remission_day"] > end).fillna(False)]:
            report.add("error", file, f"remission_day ({p.at[idx, 'remission_day']:g}) is after "
                       f"{'pfs_days' if 'pfs_days' in p else 'os_days'} ({end[idx]:g}); remission must be "
                       "documented before relapse, progression or death.", int(idx) + 2, "remission_day")
    if "death_cause" in p:
        alive = p["os_event"].eq(0).fillna(False)
        for idx in p.index[alive & p["death_cause"].notna()]:
            report.add("error", file, "death_cause is given but os_event is 0 (alive).", int(idx) + 2, "death_cause")


def _check_references(tables: dict[str, pd.DataFrame], labels: dict[str, str], report: Report) -> None:
    """Rows of other tables must name a known patient and not fall after a recorded death."""
    patients = tables["patients"]
    known = set(patients["patient_id"].dropna())
    died = patients.loc[patients["os_event"].eq(1).fillna(False), ["patient_id", "os_days"]]
    death_day = dict(zip(died["patient_id"], died["os_days"]))
    for name in ("kinetics", "daily", "labs"):
        df = tables.get(name)
        if df is None:
            continue
        for idx in df.index[~df["patient_id"].isin(known)]:
            report.add("error", labels[name], f"patient_id '{df.at[idx, 'patient_id']}' is not in patients.",
                       int(idx) + 2, "patient_id", value=df.at[idx, "patient_id"], summary="patient_id is not in patients.")
        late = df["patient_id"].map(death_day) < df["day"]
        for idx in df.index[late.fillna(False)]:
            pid = df.at[idx, "patient_id"]
            report.add("error", labels[name], f"day {df.at[idx, 'day']:g} is after the death of '{pid}' on day "
                       f"{death_day[pid]:g} (patients os_days, os_event = 1).", int(idx) + 2, "day",
                       summary="day is after the patient's death (patients os_days, os_event = 1).")


# setting -> (test of the YAML value, what is expected, in words)
_SETTING_TYPES = {
    "severe_crs_grade": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5,
                         "a whole number from 1 to 5"),
    "crs_system": (lambda v: v in ("astct", "lee2014", "ctcae5", "penn"), "one of astct, lee2014, ctcae5, penn"),
    "landmark_day": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 365,
                     "a number of days from 1 to 365"),
    "remission_responses": (lambda v: isinstance(v, list) and v and all(r in contract.RESPONSES for r in v),
                            "a list drawn from " + ", ".join(contract.RESPONSES)),
    "censor_at_hsct": (lambda v: isinstance(v, bool), "true or false"),
    "episode_gap_days": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                         "a whole number of days, 1 or more"),
    "simulated": (lambda v: isinstance(v, bool), "true or false"),
    "d_dimer_units": (lambda v: v in ("FEU", "DDU"), "FEU or DDU"),
}


def _settings(meta: dict | None, report: Report) -> tuple[Settings, dict]:
    """Analysis settings and cohort fields from cohort.yml: unknown keys and wrongly typed values are refused."""
    meta = dict(meta or {})
    known = ({s.name for s in contract.SETTINGS} | {s.name for s in contract.COHORT_FIELDS}
             | {s.name for s in contract.UNIT_SETTINGS} | {"seed", "simulator"})
    for key in sorted(set(meta) - known):
        report.add("error", "cohort.yml", f"unknown setting '{key}'; known: {', '.join(sorted(known))}.")
    for key, (ok, expected) in _SETTING_TYPES.items():
        if meta.get(key) is not None and not ok(meta[key]):
            report.add("error", "cohort.yml", f"{key} is {meta[key]!r}; expected {expected}.")
            meta.pop(key)
    kwargs = {f.name: meta[f.name] for f in fields(Settings) if meta.get(f.name) is not None}
    if "remission_responses" in kwargs:
        kwargs["remission_responses"] = tuple(kwargs["remission_responses"])
    return Settings(**kwargs), meta


def _pseudonymise(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Replace patient_id by P01, P02, ... in patients-file order, in every table."""
    ids = list(tables["patients"]["patient_id"])
    width = max(2, len(str(len(ids))))
    mapping = {pid: f"P{i + 1:0{width}d}" for i, pid in enumerate(ids)}
    out = {}
    for name, df in tables.items():
        df = df.copy(deep=False)  # the column is replaced, not written into: the others are shared
        df["patient_id"] = df["patient_id"].map(mapping)
        out[name] = df
    return out


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------

def validate(path: str | Path) -> tuple[Report, Cohort | None]:
    """Validate a cohort folder or workbook; return the full report and, when buildable, the Cohort."""
    report, cohort, checks = validate_in_steps(path)
    if checks is not None:
        checks.run()
    return report, cohort if report.ok else None


class Checks:
    """The checks of a validation that only read the parsed tables (ranges and duplicate keys, rules across
    columns and tables, plausibility): held back by `validate_in_steps` so that the chapters can start on
    the cohort meanwhile. `run` adds their problems to the report where `validate` puts them."""

    def __init__(self, report: Report):
        self.report, self._held = report, []

    def hold(self, check: Callable[[Report], None]) -> None:
        """Keep `check` (it adds to the report it is given) for `run`, at this point of the report."""
        self._held.append((len(self.report.problems), check))

    def run(self) -> Report:
        """Run every held check once; its problems go where it would have put them run at once. The report."""
        held, self._held, offset = self._held, [], 0
        for position, check in held:
            part = Report(self.report.source)
            check(part)
            self.report.problems[position + offset:position + offset] = part.problems
            offset += len(part.problems)
        return self.report


def validate_in_steps(path: str | Path) -> tuple[Report, Cohort | None, Checks | None]:
    """The cohort as `validate` makes it, its report so far and the checks still to run (`Checks`): the
    tables parsed, converted and pseudonymised first. Without a cohort (a table unreadable, a cell that does
    not parse, an error in cohort.yml) every check has run and the report is whole (checks None)."""
    path = Path(path)
    report = Report(str(path))
    checks = Checks(report)
    raw, meta, label = _read_sources(path, report)
    workbook = path.is_file()
    settings, meta = _settings(meta, report)
    labels = {name: _label(t, label, workbook) for name, t in contract.TABLES.items()}
    if "patients" not in raw and not report.errors:
        where = f"sheet 'patients' in {label}" if workbook else "patients.csv"
        report.add("error", where, "required table is missing.")
    parsed: dict[str, pd.DataFrame] = {}
    for name, table in contract.TABLES.items():
        if name in raw:
            df = _check_table(raw[name], table, labels[name], report, checks.hold)
            if df is not None:
                parsed[name] = df
        elif not table.required and "patients" in raw:
            report.add("warning", labels[name], f"optional table absent; skipped: {table.used_by}.")
    if "labs" in parsed:
        parsed["labs"] = _check_units(parsed["labs"], labels["labs"], report, meta.get("d_dimer_units"))
    if "patients" in parsed:
        checks.hold(lambda r: _check_patients(parsed["patients"], labels["patients"], r, settings))
        checks.hold(lambda r: _check_references(parsed, labels, r))
    checks.hold(lambda r: plausibility.check(parsed, labels, r))
    enrolled = _enrolled(meta.get("enrolled"), len(parsed["patients"]), report) if "patients" in parsed else None
    if not report.ok or "patients" not in parsed:
        return checks.run(), None, None
    tables = _pseudonymise(parsed)
    for name in ("kinetics", "daily", "labs"):
        if name in tables:
            tables[name] = tables[name].sort_values(list(contract.TABLES[name].key), ignore_index=True)
    name, simulated = contract.cohort_identity(meta, path)
    cohort = Cohort(
        name=name, simulated=simulated,
        source=str(meta.get("source") or ""), settings=settings, seed=meta.get("seed"),
        enrolled=enrolled,
        patients=tables["patients"].reset_index(drop=True), kinetics=tables.get("kinetics"),
        daily=tables.get("daily"), labs=tables.get("labs"),
    )
    return report, cohort, checks


def _enrolled(value, n_infused: int, report: Report) -> int | None:
    """The optional enrolled count of cohort.yml: a whole number at least the number infused."""
    if value is None:
        return None
    if not isinstance(value, int) or value < n_infused:
        report.add("error", "cohort.yml", f"enrolled is {value!r}; expected a whole number of at least "
                   f"{n_infused} (the patients infused).")
        return None
    return value


def load_cohort(path: str | Path, cache: bool = True) -> Cohort:
    """Load a validated cohort (folder or .xlsx, resolved from the project root); raise CohortError if invalid.

    A valid cohort is cached (pickle under helpers.paths.cache_dir(): _build/.cache, or a centre's private
    build folder) keyed on the content of its files and of the loader's own code, so the chapters of one
    build validate a large cohort once, not once each. The cohort carries that key (`Cohort.key`): what
    the chapters derive from it alone is shared between them on it (`helpers.derive.shared`).
    """
    from helpers.paths import cache_dir, resolve

    path = resolve(path)
    key = _content_key(path) if cache and path.exists() else ""
    entry = cache_dir() / "cohorts" / f"{key}.pkl" if key else None
    if entry is not None and entry.exists() and _checked(entry):
        try:
            return _read_entry(entry, path)
        except Exception:  # unreadable (other library versions): validate again, and store afresh
            entry.unlink(missing_ok=True)
    report, cohort = validate(path)
    if cohort is None:
        raise CohortError(report)
    if entry is not None:
        remember(path, cohort, report)
    return replace(cohort, key=key)


def _checked(entry: Path) -> bool:
    """Whether a stored cohort may be used: its report is stored beside it (every check passed), or the
    pipeline, which runs the remaining checks while its kernels start on the cohort, says so. A cohort
    stored by a build stopped before its checks ended is validated again."""
    from helpers.paths import CHECKING_ENV

    return bool(os.environ.get(CHECKING_ENV)) or entry.with_suffix(".report.pkl").exists()


def remember(path: Path, cohort: Cohort, report: Report | None = None) -> None:
    """Store a validated cohort (and its report) in the load cache: the pipeline validates once, then every
    chapter loads fast, and a later build of the same files with the same loader reads the report back."""
    from helpers.paths import cache_dir

    key = _content_key(path)
    entry = cache_dir() / "cohorts" / f"{key}.pkl"
    if report is not None:
        remember_report(path, report)
    if entry.exists():
        return
    stored = {}
    for table in DEFERRED:  # written before the entry that names them: a reader never finds one missing
        df = object.__getattribute__(cohort, table)
        if isinstance(df, pd.DataFrame):
            _write_atomic(entry.with_suffix(f".{table}.pkl"), df)
            stored[table] = Stored(Path(entry.with_suffix(f".{table}.pkl").name), len(df),
                                   table == "daily" and _grades_crs(df))
    _write_atomic(entry, replace(cohort, key=key, **stored))


def remember_report(path: Path, report: Report) -> None:
    """Store the whole report of a cohort whose every check passed: its stored cohort may now be used by
    anyone (`load_cohort`), and a rebuild of the same files reads both back instead of validating."""
    from helpers.paths import cache_dir

    _write_atomic(cache_dir() / "cohorts" / f"{_content_key(path)}.report.pkl", report)


def forget(path: Path) -> None:
    """Remove a stored cohort, its tables, its report and what the chapters derived from it (its held-back
    checks found an error)."""
    import shutil

    from helpers.paths import cache_dir

    entry = cache_dir() / "cohorts" / f"{_content_key(path)}.pkl"
    for stored in (entry, entry.with_suffix(".report.pkl"), *(entry.with_suffix(f".{t}.pkl") for t in DEFERRED)):
        stored.unlink(missing_ok=True)
    shutil.rmtree(entry.with_suffix(".derived"), ignore_errors=True)  # derive.shared's values of this cohort


def _write_atomic(entry: Path, obj: object) -> None:
    """Pickle obj to entry unless it is there, through a temporary file: parallel notebooks never read half a file."""
    if entry.exists():
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, entry)


def _read_entry(entry: Path, path: Path) -> Cohort:
    """A cohort stored by `remember`, its deferred tables pointed at their files beside it (and at the cohort's
    own files, should one be unreadable when first used)."""
    with open(entry, "rb") as f:
        cohort = pickle.load(f)
    for table in DEFERRED:
        df = object.__getattribute__(cohort, table)
        if type(df) is Stored:
            object.__setattr__(cohort, table, replace(df, file=entry.parent / df.file.name, source=path))
    return cohort


def validated(path: Path) -> tuple[Report, Cohort | None]:
    """validate(path), or the stored report and cohort of an earlier validation of the same files by the same
    loader code (`remember`): a rebuild after a prose edit does not validate again."""
    report, cohort, checks = validated_in_steps(path)
    if checks is not None:
        checks.run()
    return report, cohort if report.ok else None


def validated_in_steps(path: Path) -> tuple[Report, Cohort | None, Checks | None]:
    """`validated`, with the checks that only read the tables held back (`validate_in_steps`) when the files
    are validated afresh; a stored report is whole (checks None)."""
    from helpers.paths import cache_dir

    key = _content_key(path)
    try:
        with open(cache_dir() / "cohorts" / f"{key}.report.pkl", "rb") as f:
            report = pickle.load(f)
        return report, _read_entry(cache_dir() / "cohorts" / f"{key}.pkl", path), None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError):
        return validate_in_steps(path)


def _content_key(path: Path) -> str:
    """SHA-256 over the cohort's files (names and bytes) and the source of the loader and the contract.

    Remembered for the life of the process while no file's size, modification time or inode changes: a
    kernel loads the cohort of every chapter it runs (tens of MB to hash for a large cohort). As git does
    for its index, a file modified within the last RACY_SECONDS is hashed each time: an edit in the same
    tick of the file system's clock would leave its time unchanged."""
    inputs = {t.filename for t in contract.TABLES.values()} | {"cohort.yml"}  # not validation_report.csv
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.name in inputs)
    files += [Path(__file__), Path(contract.__file__), Path(plausibility.__file__),
              Path(__file__).with_name("units.py")]
    stats = [(str(f), st.st_size, st.st_mtime_ns, st.st_ino) for f in files for st in [f.stat()]]
    signature = tuple(stats)
    if signature in _KEYS:
        return _KEYS[signature]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    key = h.hexdigest()[:32]
    if all(time.time_ns() - mtime > RACY_SECONDS * 1e9 for _, _, mtime, _ in stats):
        _KEYS[signature] = key
    return key


RACY_SECONDS = 2
_KEYS: dict[tuple, str] = {}  # file signatures -> content key, for this process

"""Blank templates, the data dictionary (page, CSV) and a REDCap data dictionary, all from helpers.contract.

`python -m helpers templates OUT` writes them for a centre; `python -m helpers dictionary` regenerates the
book's data-contract page and the files the "Use your own cohort" page offers for download
(`book/downloads/`: linked with Sphinx's download role, which copies them into the built site).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from helpers import contract
from helpers.paths import BOOK_DIR

DICTIONARY_PAGE = BOOK_DIR / "data_contract.md"
DOWNLOADS = BOOK_DIR / "downloads"

# REDCap's data-dictionary import format: these headers, in this order (REDCap "Data Dictionary" upload).
REDCAP_HEADERS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
)


def blank_tables() -> dict[str, pd.DataFrame]:
    """One empty DataFrame per contract table, columns in contract order."""
    return {name: pd.DataFrame(columns=list(t.names)) for name, t in contract.TABLES.items()}


def default_cohort_yml() -> dict:
    """cohort.yml with every field and setting at its default."""
    meta = {s.name: s.default for s in contract.COHORT_FIELDS}
    meta.update({s.name: s.default for s in contract.SETTINGS})
    return meta


def redcap_name(table: str, column: str) -> str:
    """The REDCap variable for a contract column: REDCap needs names unique across the project, so a name
    used by more than one table (`day`) is prefixed with its table (`daily_day`); patient_id is the record ID."""
    if column == "patient_id":
        return column
    users = [t for t in contract.TABLES.values() if column in t.names]
    return f"{table}_{column}" if len(users) > 1 else column


def redcap_dictionary() -> pd.DataFrame:
    """The contract as a REDCap data dictionary: one instrument per table (kinetics, daily and labs are meant
    as repeating instruments), record ID patient_id, validation types and ranges from the contract."""
    rows = []
    for table in contract.TABLES.values():
        for c in table.columns:
            if c.name == "patient_id" and table.name != "patients":
                continue
            row = dict.fromkeys(REDCAP_HEADERS, "")
            row.update({"Variable / Field Name": redcap_name(table.name, c.name), "Form Name": table.name,
                        "Field Label": c.description, "Field Note": c.unit,
                        "Required Field?": "y" if c.required else ""})
            if c.kind == "flag":
                row["Field Type"] = "yesno"
            elif c.kind == "boolean":
                row["Field Type"] = "truefalse"
            elif c.kind == "category":
                row["Field Type"] = "dropdown"
                row["Choices, Calculations, OR Slider Labels"] = " | ".join(f"{a}, {a}" for a in c.allowed)
            else:
                row["Field Type"] = "text"
                row["Text Validation Type OR Show Slider Number"] = {"number": "number", "integer": "integer"}.get(c.kind, "")
                row["Text Validation Min"] = "" if c.minimum is None or c.kind == "text" else f"{c.minimum:g}"
                row["Text Validation Max"] = "" if c.maximum is None or c.kind == "text" else f"{c.maximum:g}"
            rows.append(row)  # patient_id is a study code, not an identifier: exports must keep it to link forms
    return pd.DataFrame(rows, columns=list(REDCAP_HEADERS))


def redcap_mapping() -> dict:
    """A mapping file for `prepare` that renames the REDCap variables back to contract columns."""
    columns = {}
    for table in contract.TABLES.values():
        renamed = {redcap_name(table.name, c): c for c in table.names if redcap_name(table.name, c) != c}
        if renamed:
            columns[table.name] = renamed
    files = {name: "redcap_export.csv" for name in contract.TABLES}
    return {"files": files, "columns": columns}


def write_templates(out: Path) -> list[Path]:
    """Write blank CSVs, cohort.yml, `cohort_template.xlsx` (a sheet per table, a dictionary sheet), the data
    dictionary as CSV, a REDCap data dictionary and the mapping that reads a REDCap export back."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in blank_tables().items():
        path = out / f"{name}.csv"
        path.write_text(",".join(df.columns) + "\n", encoding="utf-8")
        written.append(path)
    yml = out / "cohort.yml"
    yml.write_text(yaml.safe_dump(default_cohort_yml(), sort_keys=False), encoding="utf-8")
    written.append(yml)
    book = out / "cohort_template.xlsx"
    with pd.ExcelWriter(book, engine="openpyxl") as xl:
        for name, df in blank_tables().items():
            df.to_excel(xl, sheet_name=name, index=False)
        pd.DataFrame(list(default_cohort_yml().items()), columns=["key", "value"]).astype(str).to_excel(
            xl, sheet_name="cohort", index=False)
        pd.DataFrame(contract.dictionary_rows()).to_excel(xl, sheet_name="dictionary", index=False)
    written.append(book)
    written += _write_dictionaries(out)
    return written


def _write_dictionaries(out: Path) -> list[Path]:
    """data_dictionary.csv, redcap_data_dictionary.csv and redcap_mapping.yml (deterministic bytes)."""
    paths = [out / "data_dictionary.csv", out / "redcap_data_dictionary.csv", out / "redcap_mapping.yml"]
    pd.DataFrame(contract.dictionary_rows()).to_csv(paths[0], index=False, lineterminator="\n")
    redcap_dictionary().to_csv(paths[1], index=False, lineterminator="\n")
    paths[2].write_text("# Read a REDCap project built from redcap_data_dictionary.csv: export all records as\n"
                        "# 'CSV / Microsoft Excel (raw data)' into EXPORT_FOLDER/redcap_export.csv, then run\n"
                        "#   python -m helpers prepare EXPORT_FOLDER OUT --mapping redcap_mapping.yml\n"
                        "# (the rows of each repeating instrument become their table).\n"
                        + yaml.safe_dump(redcap_mapping(), sort_keys=False), encoding="utf-8")
    return paths


def write_downloads(folder: Path = DOWNLOADS) -> list[Path]:
    """The files the 'Use your own cohort' page links: workbook template (rewritten only when its content
    changes, since an .xlsx embeds its save time), data dictionary, REDCap dictionary and mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = [p for p in write_templates(Path(tmp)) if p.name == "cohort_template.xlsx"][0]
        target = folder / fresh.name
        if not target.exists() or not _same_workbook(fresh, target):
            shutil.copyfile(fresh, target)
    return [target] + _write_dictionaries(folder)


def _same_workbook(a: Path, b: Path) -> bool:
    """True when two workbooks hold the same sheets and cells (their save times differ)."""
    sa, sb = pd.read_excel(a, sheet_name=None, dtype=str), pd.read_excel(b, sheet_name=None, dtype=str)
    return list(sa) == list(sb) and all(sa[k].fillna("").equals(sb[k].fillna("")) for k in sa)


def _md_cell(value: object) -> str:
    """A dictionary cell: booleans as the YAML literals a centre types (`true`), lists comma-separated."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value).replace("|", "\\|")


def _md_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table with capitalised headers (the page is read, not parsed)."""
    head = "| " + " | ".join(c[:1].upper() + c[1:] for c in columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_md_cell(r[c]) for c in columns) + " |\n" for r in rows)
    return head + body


def dictionary_markdown() -> str:
    """The data-contract page of the book, generated from the contract."""
    parts = [
        "# Data contract\n\n",
        "<!-- Generated by `python -m helpers dictionary` from helpers/contract.py; do not edit by hand. -->\n\n",
        "A cohort is a folder of CSV files (UTF-8, comma-separated, header row) or one `.xlsx` workbook with a "
        "sheet per table, named as below. Times are days relative to CAR-T infusion (day 0; negative = before "
        "infusion); the contract has no calendar dates. Column names are fixed: new optional columns may be "
        "added, existing ones are never renamed.\n\n",
    ]
    rows = contract.dictionary_rows()
    for name, table in contract.TABLES.items():
        status = "required" if table.required else "optional"
        parts.append(f"## `{table.filename}` ({status})\n\n{table.description} Used by: {table.used_by}.\n\n")
        parts.append(_md_table([r for r in rows if r["table"] == table.filename],
                               ["column", "required", "type", "unit", "allowed", "description"]) + "\n")
    parts.append("## Analytes in `labs.csv`\n\n")
    parts.append(_md_table([{"analyte": a, "unit": u, "meaning": m} for a, (u, m) in contract.ANALYTES.items()],
                           ["analyte", "unit", "meaning"]) + "\n")
    parts.append(_units_section())
    parts.append(_ranges_section())
    parts.append("## `cohort.yml` (optional)\n\n")
    settings = [{"key": s.name, "default": s.default, "meaning": s.description}
                for s in contract.COHORT_FIELDS + contract.SETTINGS + contract.UNIT_SETTINGS]
    parts.append(_md_table(settings, ["key", "default", "meaning"]) + "\n")
    parts.append("## Refused columns\n\nA column whose name contains one of these words is refused, because it "
                 "looks like a direct identifier or a calendar date: "
                 + ", ".join(f"`{w}`" for w in contract.FORBIDDEN_COLUMN_WORDS) + ". REDCap's structural columns ("
                 + ", ".join(f"`{c}`" for c in contract.REDCAP_COLUMNS) + ", and form-status columns ending in "
                 "`_complete`) are ignored with a note.\n\n")
    parts.append(_synonyms_section())
    return "".join(parts)


def _units_section() -> str:
    """How lab units are read: spellings, fixed factors, molar masses, the D-dimer convention."""
    conv = [{"analyte": a, "unit found": u, "factor to canonical": f"{f:g}"} for (a, u), f in
            contract.UNIT_CONVERSIONS.items()]
    masses = ", ".join(f"{a} {m:g} g/mol" for a, m in contract.MOLAR_MASS_G_PER_MOL.items())
    return ("### Units\n\nUnits are read with [pint](https://pint.readthedocs.io) after their spelling is normalised: "
            "micro as `µ`, `μ`, `u` or `mc`; any letter case; powers of ten as `x10^9/L`, `10E9/L` or `10*9/L`; "
            "`/mm3` = `/uL`; `K/uL` = `10^3/uL`. The same unit in another spelling (`µg/L` for `ng/mL`, `x10^3/µL` "
            "for `10^9/L`) is accepted with a note; another unit of the same quantity is converted with a warning, "
            "one line per analyte and unit. Mass and molar concentrations convert through the molar mass "
            f"({masses}). International units (IU) of a cytokine never convert; IU/L of an enzyme is U/L. D-dimer "
            "is FEU or DDU: a unit without the qualifier is refused once, unless `cohort.yml` sets `d_dimer_units` "
            "for the whole cohort (DDU values are doubled to FEU). Conventional factors used as they are "
            "quoted:\n\n" + _md_table(conv, ["analyte", "unit found", "factor to canonical"]) + "\n")


def _ranges_section() -> str:
    """Physiologically possible (error) and plausible (warning) limits, with their sources."""
    def rng(r: tuple) -> str:
        return f"{contract._limit(r[0])} to {contract._limit(r[1])}"
    rows = [{"what": f"`{a}` ({contract.ANALYTES[a][0]})", "error outside": rng(r.possible),
             "warning outside": rng(r.plausible), "source": r.source} for a, r in contract.ANALYTE_RANGES.items()]
    rows += [{"what": f"`{t}.{c}`", "error outside": rng(r.possible), "warning outside": rng(r.plausible),
              "source": r.source} for (t, c), r in contract.COLUMN_RANGES.items()]
    return ("## Plausibility checks\n\nBeyond types and ranges, `validate` reports values outside what is "
            "physiologically possible (error) or plausible (warning); patients whose values of an analyte sit a "
            "unit factor (10x, 1000x) off the cohort's for the same unit, naming the unit that was likely meant; "
            "columns that look swapped (age and marrow blasts, OS and PFS); contradictory support (oxygen `none` "
            "with a flow or an FiO2 above 21%, `low_flow` above 6 L/min, a norepinephrine-equivalent dose without a "
            "vasopressor); and rules across tables (a death is a PFS event, `hsct_day` is at most `os_days`, a CRS "
            "death needs a fever day from day 0 or a reported CRS grade of at least 1).\n\n"
            + _md_table(rows, ["what", "error outside", "warning outside", "source"]) + "\n")


def _synonyms_section() -> str:
    """The default vocabulary `python -m helpers prepare` reads (a centre extends it in mapping.yml)."""
    def words(table: dict) -> str:
        grouped: dict[str, list[str]] = {}
        for k, v in table.items():
            grouped.setdefault(str(v), []).append(k)
        return "; ".join(f"{v}: {', '.join(ks)}" for v, ks in grouped.items())
    rows = [{"column": "0/1 and true/false columns", "synonyms": words(contract.FLAG_SYNONYMS)}]
    rows += [{"column": f"`{c}`", "synonyms": words(t)} for c, t in contract.VALUE_SYNONYMS.items()]
    rows.append({"column": "`best_response` with MRD", "synonyms": "; ".join(
        f"{k}: {r} + mrd_negative {str(m).lower()}" for k, (r, m) in contract.RESPONSE_WITH_MRD.items())})
    rows.append({"column": "`analyte`", "synonyms": words(contract.ANALYTE_SYNONYMS)})
    rows.append({"column": "`oxygen`", "synonyms": words(contract.OXYGEN_SYNONYMS)})
    rows.append({"column": "drug names", "synonyms": words(contract.DRUG_SYNONYMS)})
    factors = " + ".join(f"{d} x {f:g}" for d, f in contract.CATECHOLAMINES.items())
    return ("## Synonyms read by `prepare`\n\n`python -m helpers prepare` (see {doc}`adapt`) reads these words, "
            "compared ignoring case, spaces, `-`, `_` and `.`; a centre adds its own in `mapping.yml`. Oxygen text "
            "also gives the flow (`2L`, `40 L/min`) and FiO2 (`50%`, `FiO2 0.5`); room air is flow 0 and FiO2 21%. "
            "Vasopressor doses (`<drug>_ug_min`, `<drug>_ug_kg_min` with `weight_kg` in patients, `vasopressin_u_min`, "
            f"or text such as `norepinephrine 0.1 mcg/kg/min`) give `vasopressors`, `vasopressin` and `norepi_equiv_ug_min` "
            f"= {factors} (ug/min; Goradia S et al., J Crit Care 2021;61:233-240); vasopressin stays its own flag.\n\n"
            + _md_table(rows, ["column", "synonyms"]) + "\n")


def write_dictionary_page(path: Path = DICTIONARY_PAGE) -> Path:
    """Regenerate the book's data-contract page (and the downloads of the 'Use your own cohort' page)."""
    path.write_text(dictionary_markdown(), encoding="utf-8")
    if path == DICTIONARY_PAGE:
        write_downloads()
    return path

"""Chapters 1, 2 and 5 and the findings page, section by section: the values they show on the shipped cohort,
the NE flow on an exact hand-built cohort, and a run on a cohort unlike the shipped one (other n,
`simulated: false`, kinetics absent) that must show none of the shipped cohort's facts."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

matplotlib.use("Agg")

from helpers import cohort_report, findings, kinetics_report, response_report, tables  # noqa: E402
from helpers.page import open_page  # noqa: E402
from helpers.paths import PROJECT_ROOT, SHIPPED_COHORT  # noqa: E402
from helpers.sections import Shown, Skipped  # noqa: E402

KIN_PARAMS = dict(auc_method="lin-up/log-down", auc_end_day=28.0, blq_first="keep", blq_middle="drop", blq_last="keep")
SHIPPED_FACTS = re.compile(r"\b24 (infused )?patients\b|16/24|13/24|13/16|19/24|6/24|\bsimulated\b", re.I)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return open_page(SHIPPED_COHORT, tmp_path_factory.mktemp("tables"), **KIN_PARAMS)


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """40 patients, seed 7, not simulated by its cohort.yml, no kinetics table."""
    out = tmp_path_factory.mktemp("other")
    subprocess.run([sys.executable, "-m", "helpers", "simulate", "--n", "40", "--seed", "7", "--out", str(out)],
                   check=True, cwd=PROJECT_ROOT, capture_output=True)
    meta = yaml.safe_load((out / "cohort.yml").read_text())
    meta.update(simulated=False, name="Centre B export", source="hospital export")
    meta.pop("seed", None)
    (out / "cohort.yml").write_text(yaml.safe_dump(meta))
    (out / "kinetics.csv").unlink()
    return open_page(out, tmp_path_factory.mktemp("tables"), **KIN_PARAMS)


def _text(out) -> str:
    return out.markdown() if isinstance(out, Skipped) else out.text() + " ".join(
        t.frame.to_csv() for t in out.tables())


# ------------------------------------------------------------------ chapter 1
def test_table_one_cells_are_gtsummary_cells_of_table_one_numbers(shipped):
    out = cohort_report.table_one(shipped)
    table = out.tables()[0]
    frame = table.frame.set_index("Characteristic")
    pt = shipped.pt
    n_rem = int(pt["remission"].sum())
    assert list(frame.columns) == [f"Overall, N = {len(pt)}", f"No remission, N = {len(pt) - n_rem}",
                                   f"Remission, N = {n_rem}", "p-value"]
    # age: median (Q1, Q3) with R type-7 quantiles = numpy's default linear interpolation, whole years
    q1, med, q3 = np.quantile(pt["age_years"], [0.25, 0.5, 0.75])
    assert frame.loc["Age, years", f"Overall, N = {len(pt)}"] == f"{med:.0f} ({q1:.0f}, {q3:.0f})"
    # sex levels indented under the variable, n (%) of those with a value
    k = int((pt["sex"] == "F").sum())
    assert frame.loc["Female", f"Overall, N = {len(pt)}"] == f"{k} ({100 * k / len(pt):.1f}%)"
    assert table.frame["Characteristic"].tolist().index("Female") == table.frame["Characteristic"].tolist().index("Sex") + 1
    # p-values are table_one's numbers, printed two significant digits
    tidy = out.data.set_index(["variable", "level"])
    import scipy.stats as ss

    tab = pd.crosstab(pt["remission"], pt["sex"]).to_numpy()
    assert tidy.loc[("sex", ""), "p_value"] == pytest.approx(ss.fisher_exact(tab).pvalue, rel=1e-9)
    assert frame.loc["Sex", "p-value"] == f"{float(f'{ss.fisher_exact(tab).pvalue:.2g}'):.2f}"
    assert "Wilcoxon rank-sum test; Fisher&#x27;s exact test" in table.html or \
        "Wilcoxon rank-sum test; Fisher's exact test" in table.html
    assert "Median (Q1, Q3); n (%)" in table.html and "Remission (CR/CRi)" in table.html  # spanner
    assert "Wilcoxon" not in " ".join(table.frame["p-value"])  # the test is named once, not per row


def test_table_one_unknown_rows_count_missing_values():
    pt = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"], "age_years": [30.0, np.nan, 50.0, 40.0],
                       "sex": ["F", None, "M", "M"], "remission": [True, True, False, False]})
    groups = pd.Series(pd.Categorical(["Remission", "Remission", "No remission", "No remission"],
                                      categories=["No remission", "Remission"]))
    frame, indent, tests, tidy = cohort_report.baseline_frames(pt, groups)
    assert frame["Characteristic"].tolist() == ["Age, years", "Unknown", "Sex", "Female", "Male", "Unknown"]
    assert indent == [1, 3, 4, 5]
    assert frame.iloc[1, 1:4].tolist() == ["1", "0", "1"]  # overall, no remission, remission
    # age 30, 50, 40 -> median 40, type-7 Q1 35, Q3 45; remission group: 30 only
    assert frame.iloc[0, 1] == "40 (35, 45)" and frame.iloc[0, 3] == "30 (30, 30)"
    assert frame.loc[3, "Overall, N = 4"] == "1 (33.3%)"  # 1 female of the 3 with a value
    assert tests == ["Wilcoxon rank-sum test", "Fisher's exact test"]
    assert tidy["p_value"].notna().sum() == 2  # the tidy table_one frame is kept for the CSV


def test_hand_values_of_table_one_display():
    """The hand-worked values of the former describe test, in gtsummary's cell format."""
    pt = pd.DataFrame({
        "patient_id": ["P01", "P02", "P03", "P04", "P05"], "remission": [True, True, True, False, False],
        "age_years": [30.0, 40.0, np.nan, 20.0, 50.0], "sex": ["F", "M", "F", "M", "M"],
        "car_dose_per_kg": [1e6, 2e6, 1e6, 5e5, 1e6]})
    groups = pd.Series(pd.Categorical(["Remission"] * 3 + ["No remission"] * 2, categories=["No remission", "Remission"]))
    frame = cohort_report.baseline_frames(pt, groups)[0].set_index("Characteristic")
    dose = "CAR-T dose, \u00d710\u2076 cells/kg"
    # dose in 10^6/kg 1, 2, 1, 0.5, 1: median 1, Q1 = Q3 = 1; no remission 0.5, 1 -> 0.75 (prints 0.8), Q1 0.6, Q3 0.9
    assert frame.loc[dose, "Overall, N = 5"] == "1.0 (1.0, 1.0)"
    assert frame.loc[dose, "No remission, N = 2"] == "0.8 (0.6, 0.9)"
    assert frame.loc["Age, years", "Overall, N = 5"] == "35 (28, 42)"  # 20 30 40 50
    assert frame.loc["Female", "Remission, N = 3"] == "2 (66.7%)"
    # Fisher 2x2 (remission F2 M1 / no remission F0 M2): p = 3/10 + 1/10 = 0.4
    assert frame.loc["Sex", "p-value"] == "0.40"
    overall = cohort_report.baseline_frames(pt)[0]
    assert list(overall.columns) == ["Characteristic", "Overall, N = 5"]


def test_flow_sentence_on_the_shipped_cohort(shipped):
    """The published counts (24 infused, 16 remissions, 13 MRD-negative); the shipped files record the two
    non-responders who died before day 28 as PR/NR until data/simulated is regenerated with NE."""
    out = cohort_report.flow(shipped)
    if not shipped.pt["best_response"].eq("NE").any():
        assert out.text() == ("Of the 24 infused patients, 24 were evaluable for response; 16 reached remission "
                              "(8 without remission: 3 PR, 5 NR), and 13 of the remissions were MRD-negative "
                              "(3 not MRD-negative: 3 MRD-positive).")
    else:
        assert out.text() == ("Of the 24 infused patients, 22 were evaluable for response (2 not evaluable (NE): "
                              "2 died before response assessment); 16 reached remission (6 without remission: 2 PR, "
                              "4 NR), and 13 of the remissions were MRD-negative (3 not MRD-negative: 3 MRD-positive).")


def _ne_cohort(path):
    """Exact NE flow: 10 enrolled, 8 infused: 3 CR (2 MRD-neg, 1 MRD-pos), 1 CRi (MRD not tested), 1 PR, 1 NR,
    NE died day 12, NE alive at day 20 (left before assessment); landmark (assessment) day 28."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "patients.csv").write_text(
        "patient_id,best_response,os_days,os_event,mrd_negative\n"
        "A1,CR,400,0,true\nA2,CR,300,0,true\nA3,CR,200,1,false\nA4,CRi,100,1,\nA5,PR,90,1,\nA6,NR,60,1,\n"
        "A7,NE,12,1,\nA8,NE,20,0,\n")
    (path / "cohort.yml").write_text(yaml.safe_dump({"name": "NE fixture", "simulated": False, "enrolled": 10,
                                                     "landmark_day": 28}))
    return path


def test_ne_flow_exact(tmp_path):
    page = open_page(_ne_cohort(tmp_path / "ne"), tmp_path / "tables")
    out = cohort_report.flow(page)
    assert out.text() == (
        "10 patients were enrolled (2 not infused). Of the 8 infused patients, 6 were evaluable for "
        "response (2 not evaluable (NE): 1 died before response assessment, 1 not assessed for another reason); "
        "4 reached remission (2 without remission: 1 PR, 1 NR), and 2 of the remissions were MRD-negative "
        "(2 not MRD-negative: 1 MRD-positive, 1 MRD not tested).")
    assert out.data["n"].drop_duplicates().tolist() == [10, 8, 6, 4, 2]
    best = response_report.best_response(page).tables()[0].frame
    assert best["Best response"].tolist()[-1] == "Not evaluable (NE)" and best["Patients, n (%)"].tolist()[-1] == "2/8 (25.0%)"
    rates = response_report.rates(page).text()
    assert "Remission (CR/CRi): 4/8 (50.0%; 95% CI 15.7\u201384.3)." in rates  # R: binom.test(4, 8)
    assert "Among the patients evaluable for response: 4/6 (66.7%; 95% CI 22.3\u201395.7)." in rates  # binom.test(4, 6)
    assert "1 remission without an MRD result counts as not MRD-negative." in rates


def test_followup_sentence_in_months(shipped):
    text = cohort_report.followup(shipped).text()
    fu = cohort_report.describe.followup(shipped.pt)
    assert text.startswith(f"The median follow-up for overall survival is {fu['median'] / (365.25 / 12):.1f} months")
    assert "inf" not in text and "nan" not in text


# ------------------------------------------------------------------ chapter 5
def test_kinetics_tables_have_no_raw_numbers(shipped):
    out = kinetics_report.per_patient(shipped)
    frame = out.tables()[0].frame
    cells = " ".join(frame.to_numpy().ravel())
    assert not re.search(r"\d\.\d{3}\b|NA\b|nan|e\+", cells)
    assert "not estimable" in cells  # at least one half-life the samples cannot support
    why = out.data.set_index("patient_id")
    no_hl = why[why["half_life"].isna()]
    assert (no_hl["half_life_not_estimable"] != "").all() and (why.loc[why["half_life"].notna(), "half_life_not_estimable"] == "").all()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", frame.iloc[0, 2])  # Cmax: thousands separators, 3 significant figures


def test_sig3_and_days():
    assert kinetics_report.sig3(435.5) == "436" and kinetics_report.sig3(32712) == "32,700"
    assert kinetics_report.sig3(1.2345) == "1.23" and kinetics_report.sig3(float("nan")) == "\u2014"
    assert kinetics_report.day(10.0) == "10" and kinetics_report.day(10.46) == "10.5"


def test_half_life_reasons_by_hand():
    kin = pd.DataFrame({"patient_id": ["P1"] * 4 + ["P2"] * 2 + ["P3"] * 2, "day": [0, 7, 14, 28, 0, 7, 0, 7],
                        "car_copies_per_ug_dna": [0, 1000, 500, 250, 0, 900, 0, 0]})
    params = kinetics_report.kinetics.nca(kin)
    why = kinetics_report.half_life_reason(kin, params).tolist()
    # P1: two quantifiable samples after the day-7 peak (< 3); P2: none after its peak; P3: nothing quantifiable
    assert why == ["fewer than 3 quantifiable samples after the peak"] * 2 + ["no quantifiable sample"]


# ------------------------------------------------------------------ another cohort
SECTIONS = [*(getattr(cohort_report, f) for f in ("flow", "table_one", "table_one_by_severe_crs", "product",
                                                  "followup", "conclusions")),
            *(getattr(response_report, f) for f in ("best_response", "rates", "subgroups", "swimmer",
                                                    "time_to_remission", "crs_and_expansion", "conclusions")),
            *(getattr(kinetics_report, f) for f in ("per_patient", "fits", "summary", "reference", "profiles",
                                                    "profiles_by_group", "cmax_by_group", "associations",
                                                    "peak_source", "judgement_calls", "conclusions")),
            findings.at_a_glance]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda f: f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}")
def test_sections_on_another_cohort_show_no_shipped_fact(other, section):
    out = section(other)
    assert isinstance(out, (Shown, Skipped))
    text = _text(out)
    assert not SHIPPED_FACTS.search(text), SHIPPED_FACTS.search(text)
    if section.__module__.endswith("kinetics_report"):
        assert isinstance(out, Skipped) and "kinetics.csv" in out.reason


def test_other_cohort_values(other):
    assert "Of the 40 infused patients" in cohort_report.flow(other).text()
    assert "/40 (" in response_report.rates(other).text()
    glance = findings.at_a_glance(other)
    assert "Not available for this cohort (its inputs are absent): Cellular kinetics." in glance.text()
    assert (glance.data["link"] == "kinetics").sum() == 0


def test_findings_on_the_shipped_cohort(shipped):
    t = findings.at_a_glance(shipped).data.set_index("finding")
    assert t.loc["Remission (CR/CRi)", "result"] == "16/24 (66.7%; 95% CI 44.7\u201384.4)"
    assert t.loc["MRD-negative, of patients in remission", "result"] == "13/16 (81.2%; 95% CI 54.4\u201396.0)"
    assert t.loc["Any CRS", "result"] == "19/24 (79.2%; 95% CI 57.8\u201392.9)"
    assert t.loc["Severe CRS (grade \u22653, ASTCT 2019)", "result"] == "6/24 (25.0%; 95% CI 9.8\u201346.7)"
    assert t["result"].str.contains("HR ").sum() == 2 and t["link"].notna().all()
    assert not t["result"].str.contains(r"\binf\b|\bnan\b|e\+").any()


def test_findings_markers_are_the_crs_chapters_tested_family(shipped):
    # the findings page reads the CRS chapter's comparison (every marker, shared on the cohort's key) and counts
    # only the tested markers: the same rows and q-values as the tested-only comparison computed afresh
    from helpers import crs_severity

    s = shipped.settings
    fresh = crs_severity.compare_severity(crs_severity.severity_frame(shipped.pt, shipped.data, s.severe_crs_grade),
                                          "severe_vs_mild", s.crs_system)
    shared = crs_severity.page_comparison(shipped, "severe_vs_mild")
    assert set(shared["role"]) > {"tested"}  # described markers too, as the chapter shows them
    assert shared[shared["role"] == "tested"].reset_index(drop=True).equals(fresh)
    k = int((fresh["p_adj_bh"] < 0.05).sum())
    assert findings.marker_lines(shipped)[0]["result"].startswith(f"{k} of {len(fresh)} markers differ")


def test_simulator_writes_ne_for_deaths_before_the_assessment_day(tmp_path):
    """Fresh simulation (the shipped seed, in a temp folder): NE exactly for non-responders dead before day 28;
    the other tables stay byte-identical and every published fact still holds."""
    from helpers import published, simulate
    from helpers.cohort import load_cohort

    spec = simulate.SimulationSpec(seed=simulate.SHIPPED_SEED)
    simulate.write_cohort(simulate.simulate_cohort(spec), tmp_path, simulate.cohort_meta(spec))
    p = pd.read_csv(tmp_path / "patients.csv")
    early = ~p["best_response"].isin(["CR", "CRi"]) & p["os_event"].eq(1) & (p["os_days"] < simulate.ASSESSMENT_DAY)
    assert early.any()
    assert p["best_response"].eq("NE").tolist() == early.tolist()
    assert simulate.cohort_meta(spec)["landmark_day"] == simulate.ASSESSMENT_DAY
    shipped = pd.read_csv(SHIPPED_COHORT / "patients.csv")
    assert p.drop(columns="best_response").equals(shipped.drop(columns="best_response"))
    for name in ("kinetics.csv", "daily.csv", "labs.csv"):
        assert (tmp_path / name).read_bytes() == (SHIPPED_COHORT / name).read_bytes(), name
    cohort = load_cohort(tmp_path)
    assert published.check_facts(cohort)["reproduced"].tolist() == [True] * 10
    page = open_page(tmp_path, tmp_path / "tables")
    flow = cohort_report.flow_frames(page)[1].set_index(["stage", "reason"])["n"]
    assert flow[("Evaluable for response", "died before response assessment")] == int(early.sum())
    assert "22 were evaluable for response (2 not evaluable (NE): 2 died before response assessment)" in \
        cohort_report.flow(page).text()


def test_points_not_boxes_for_groups_of_fewer_than_five():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from helpers.group_plot import points_by_group

    values = pd.Series([1.0, 2, 3, 4, 5, 6, 7, 8, 9], index=list("abcdefghi"))
    groups = pd.Series(pd.Categorical(["small"] * 3 + ["large"] * 6, categories=["small", "large"]), index=values.index)
    fig, ax = plt.subplots()
    points_by_group(values, groups, ax, ylabel="Value, unit")
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bars) == 1  # the median bar of the group of 3; the group of 6 gets a box (drawn as lines)
    assert len(ax.lines) >= 5 and ax.get_ylabel() == "Value, unit"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["small\n(n = 3)", "large\n(n = 6)"]
    colours = {tuple(np.round(c.get_facecolor()[0], 3)) for c in ax.collections if not isinstance(c, LineCollection)
               and len(c.get_offsets())}
    assert len(colours) == 1  # one colour for every point: position, not colour, names the group
    plt.close(fig)

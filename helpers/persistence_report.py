"""Sections on CAR-T persistence for the kinetics chapter: B-cell aplasia and pre-infusion CAR-T findings.

`bcell_aplasia` (helpers.bcell): how many patients had B-cell aplasia, how long it lasted and whether it
relapse-free survival by whether it was still ongoing at a landmark day. `pre_infusion_kinetics`
(helpers.kinetics.pre_infusion_findings): positive samples before infusion, kept out of the kinetics.
"""
from __future__ import annotations

import pandas as pd

from helpers import bcell, display, fmt, kinetics
from helpers.toxicity_report import p_text
from helpers.page import Page
from helpers.sections import Shown, Skipped, needs


@needs(tables=("kinetics",), what="CAR-T before infusion")
def pre_infusion_kinetics(page: Page) -> Shown | Skipped:
    """Positive CAR transgene samples before infusion (e.g. a prior CAR-T product), flagged and left out of the NCA."""
    f = kinetics.pre_infusion_findings(page.data.kinetics)
    if f.empty:
        return Skipped("CAR-T before infusion", "no kinetics sample was taken before the infusion.")
    pos = f[f["positive"]]
    if pos.empty:
        return Shown(f"All {fmt.plural(len(f), 'patient')} sampled before infusion were below the limit of "
                     "quantification.", data=f)
    df = pd.DataFrame({"Patient": pos["patient_id"], "Samples before infusion": pos["n_pre_samples"].map(fmt.integer),
                       "First positive day": pos["first_positive_day"].map(lambda d: fmt.number(d, 0)),
                       "Highest value, copies/\u00b5g DNA": pos["max_pre_copies"].map(lambda v: fmt.number(v, 0))})
    text = (f"{fmt.plural(len(pos), 'patient')} had CAR transgene detected before this infusion (a baseline finding, "
            "such as cells of an earlier CAR-T product); those samples are not part of the kinetics above.")
    return Shown(text, display.listing(df, "tbl-pre-infusion-kinetics", stub="Patient"), data=f)


@needs(tables=("labs",), what="B-cell aplasia")
def bcell_aplasia(page: Page) -> Shown | Skipped:
    """B-cell aplasia: how many, how long (Kaplan-Meier, ongoing aplasia censored), and relapse by landmark."""
    from helpers.survival import km_estimates

    o = bcell.BcellOptions()
    course = bcell.aplasia_course(page.data.labs, o)
    if course.empty:
        return Skipped("B-cell aplasia", "the laboratory table has no CD19+ B-cell count (`cd19_b_cells`).")
    apl = course[course["aplasia"]]
    km = km_estimates(apl.assign(recovered=apl["recovered"].astype(int)), "duration_days", "recovered",
                      times=()) if len(apl) else None
    med = km.iloc[0] if km is not None else None
    rows = [{"Measure": "Patients with B-cell counts", "Value": fmt.integer(len(course))},
            {"Measure": f"B-cell aplasia (below {fmt.number(o.aplasia_below, 0)} cells/\u00b5L)",
             "Value": fmt.n_pct(len(apl), len(course))},
            {"Measure": "Median duration of aplasia, months",
             "Value": fmt.months_ci(med["estimate"], med["ci_low"], med["ci_high"]) if med is not None else fmt.MISSING},
            {"Measure": "Aplasia ongoing at the last count", "Value": fmt.n_pct(int((~apl["recovered"]).sum()), len(apl))},
            {"Measure": f"IgG below {fmt.number(o.hypogamma_below, 0)} g/L after infusion",
             "Value": fmt.n_pct(int(course["hypogamma"].sum()), int(course["igg_min"].notna().sum()))
             if course["igg_min"].notna().any() else fmt.MISSING}]
    tbl = display.table(pd.DataFrame(rows), "tbl-bcell-aplasia", stub="Measure",
                        notes=["Duration from infusion to B-cell recovery (first count at or above the cut-off); "
                               "aplasia still present at the last count is censored (Kaplan-Meier, log-log 95% CI)."])
    text = (f"B-cell aplasia was seen in {fmt.count_pct(len(apl), len(course))} of the patients with B-cell counts"
            + (f"; its median duration was {fmt.months_ci(med['estimate'], med['ci_low'], med['ci_high'])} months."
               if med is not None else "."))
    return Shown(text, tbl, _bcell_landmark(page, course, o), page.download(course, "bcell_aplasia"), data=course)


def _bcell_landmark(page: Page, course: pd.DataFrame, o: bcell.BcellOptions) -> display.Table | Skipped:
    """Relapse-free survival after the landmark by ongoing aplasia (log-rank), or why it cannot be shown."""
    if not {"pfs_days", "pfs_event"} <= set(page.data.patients.columns):
        return Skipped("B-cell aplasia and relapse", "the patients table has no PFS columns.")
    d, test = bcell.landmark_relapse(course, page.data.patients, page.pt.set_index("patient_id")["remission"], o)
    if not test:
        return Skipped("B-cell aplasia and relapse", f"at day {fmt.number(o.landmark_day, 0)} not both groups "
                       "(ongoing aplasia, B cells present) hold a patient in remission.")
    t = bcell.relapse_by_group(d)
    df = pd.DataFrame({"Group at the landmark": t["group"].str.capitalize(), "Patients": t["n"].map(fmt.integer),
                       "Relapse or death after it": [fmt.n_pct(k, n) for k, n in zip(t["k_events"], t["n"])]})
    return display.table(df, "tbl-bcell-landmark", stub="Group at the landmark",
                         notes=[f"Landmark day {fmt.number(o.landmark_day, 0)}: patients in remission, alive and "
                                f"relapse-free at it. Log-rank test: {p_text(test['p_value'])}."])

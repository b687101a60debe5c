"""Response: best-response distribution, remission and MRD-negative rates with exact CIs, response by
subgroup (odds ratios), CRS and expansion by response, and the swimmer plot of each patient's course.

Rates use Clopper-Pearson exact intervals (helpers.stats.proportion); subgroup odds ratios use
helpers.stats.odds_ratio_table (conditional MLE with exact CI, Firth when a cell is zero).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import contract, stats
from helpers.describe import evaluable

RESPONSES = contract.RESPONSES  # CR, CRi, PR, NR and NE (not evaluable: died or left before assessment)
ALWAYS_SHOWN = ("CR", "CRi", "PR", "NR")  # NE gets a row only when a patient has it
# column -> (kind for stats.odds_ratio_table, label of the exposed group; continuous = above the median)
SUBGROUP_FACTORS: dict[str, tuple[str, str]] = {
    "bm_blasts_pct": ("continuous", "Marrow blasts above median"),
    "ph_positive": ("binary", "Ph-positive"),
    "prior_allo_hsct": ("binary", "Prior allo-HSCT"),
    "car_dose_per_kg": ("continuous", "CAR-T dose above median"),
    "product_em_pct": ("continuous", "Effector-memory share above median"),
}
# Bars: one blue-grey scale for best response (markers carry the events in their own colours and shapes).
RESPONSE_COLOURS = {"CR": "#08519c", "CRi": "#4292c6", "PR": "#9ecae1", "NR": "#bdbdbd", "NE": "#f0f0f0"}
SWIMMER_MARKERS = {  # event -> (marker, colour, legend label)
    "remission": ("o", "tab:green", "Remission (at response assessment)"),
    "mrd_negative": ("*", "darkgreen", "MRD-negative remission (at response assessment)"),
    "relapse_progression": ("X", "tab:red", "Relapse / progression"),
    "allo_hsct": ("D", "tab:purple", "Allo-HSCT"),
    "death": ("s", "black", "Death"),
    "censored": (">", "0.5", "Alive at last follow-up (censored)"),
}


def best_response_table(pt: pd.DataFrame) -> pd.DataFrame:
    """One row per best-response category (CR, CRi, PR, NR; NE when present): n, share of all infused patients, exact 95% CI."""
    n = len(pt)
    rows = []
    for r in [r for r in RESPONSES if r in ALWAYS_SHOWN or pt["best_response"].eq(r).any()]:
        p = stats.proportion(int(pt["best_response"].eq(r).sum()), n, r)
        rows.append({"response": r, "n": p["k"], "N": n,
                     "percent": 100 * p["estimate"], "ci_low_pct": 100 * p["ci_low"],
                     "ci_high_pct": 100 * p["ci_high"]})
    return pd.DataFrame(rows)


def response_rates(pt: pd.DataFrame) -> pd.DataFrame:
    """Remission rate, MRD-negative remission rate (all patients) and MRD negativity among remissions, exact 95% CIs.

    Denominators are all infused patients and all remissions: a remission without an MRD result counts
    as not MRD-negative (reported in `mrd_unknown`). MRD rows are left out when the cohort has no MRD data.
    """
    n, rem = len(pt), pt["remission"].astype(bool)
    rows = [stats.proportion(int(rem.sum()), n, "Remission")]
    n_eval = int(evaluable(pt).sum())
    if n_eval < n and n_eval:  # NE patients: the rate among the evaluable beside the rate among all infused
        rows.append(stats.proportion(int((rem & evaluable(pt)).sum()), n_eval, "Remission, of evaluable patients"))
    if "mrd_negative" in pt and pt["mrd_negative"].notna().any():
        mrd = pt["mrd_negative"].eq(True).fillna(False) & rem
        unknown = int((pt["mrd_negative"].isna() & rem).sum())
        rows.append(stats.proportion(int(mrd.sum()), n, "MRD-negative remission, of all patients"))
        if rem.any():
            rows.append(stats.proportion(int(mrd.sum()), int(rem.sum()), "MRD-negative, of remissions"))
        for r in rows:
            r["mrd_unknown"] = unknown if r["label"].startswith("MRD") else 0
    out = pd.DataFrame(rows)
    return out.rename(columns={"label": "term"})


def subgroup_factors(pt: pd.DataFrame) -> dict[str, str]:
    """The SUBGROUP_FACTORS this cohort can split on: the column has at least two distinct non-missing values."""
    return {c: kind for c, (kind, _) in SUBGROUP_FACTORS.items()
            if c in pt and pt[c].dropna().nunique() >= 2}


def subgroup_table(pt: pd.DataFrame) -> pd.DataFrame:
    """Odds ratio of remission per subgroup factor (stats.odds_ratio_table) with a readable `term` and remission counts per arm.

    `estimate` repeats `or` because survival.forest_plot reads `hr` or `estimate`. Continuous factors are
    split above vs at-or-below their median, so the exposed group is 'above the median'.
    """
    factors = subgroup_factors(pt)
    if not factors:
        return pd.DataFrame(columns=["term", "estimate", "ci_low", "ci_high", "p_value", "method"])
    t = stats.odds_ratio_table(pt.assign(remission=pt["remission"].astype(bool)), "remission", factors)
    t.insert(0, "term", t["factor"].map(lambda c: SUBGROUP_FACTORS[c][1]))
    t["estimate"] = t["or"]
    t["remission_exposed"] = [f"{a}/{b}" for a, b in zip(t["events_exposed"], t["n_exposed"])]
    t["remission_unexposed"] = [f"{a}/{b}" for a, b in zip(t["events_unexposed"], t["n_unexposed"])]
    return t


def plot_subgroups(table: pd.DataFrame, ax=None):
    """Forest plot of the subgroup odds ratios of remission (survival.forest_plot on a log axis), OR > 1 favours the subgroup."""
    from helpers.survival import forest_plot

    ax = forest_plot(table, ax=ax, label_col="term", log=True)
    ax.set_xlabel("Odds ratio of remission, subgroup vs rest (95% CI)")
    return ax


# ------------------------------------------------------------------ swimmer plot
def swimmer_events(pt: pd.DataFrame, landmark_day: float) -> pd.DataFrame:
    """Events on each patient's lane (patient_id, event, day), the lane ending at os_days.

    Remission and MRD negativity are placed at `remission_day` (recorded, or derive's landmark-day
    assumption; `landmark_day` when the column is absent), or the last follow-up if earlier;
    relapse/progression at pfs_days when pfs_event = 1 and the patient did not die that day; allo-HSCT at
    hsct_day; death or censoring at os_days.
    """
    rem = pt["remission"].astype(bool)
    known = pt["remission_day"].astype(float) if "remission_day" in pt else pd.Series(float(landmark_day), pt.index)
    assess = np.minimum(known.fillna(float(landmark_day)), pt["os_days"].astype(float))
    parts = [pd.DataFrame({"patient_id": pt["patient_id"], "event": "remission", "day": assess})[rem]]
    if "mrd_negative" in pt:
        parts.append(pd.DataFrame({"patient_id": pt["patient_id"], "event": "mrd_negative", "day": assess})
                     [rem & pt["mrd_negative"].eq(True).fillna(False)])
    if {"pfs_days", "pfs_event"} <= set(pt.columns):
        died_then = pt["os_event"].eq(1) & pt["os_days"].eq(pt["pfs_days"])
        rel = (pt["pfs_event"].eq(1) & ~died_then).fillna(False).astype(bool)
        parts.append(pd.DataFrame({"patient_id": pt["patient_id"], "event": "relapse_progression",
                                   "day": pt["pfs_days"]})[rel])
    if "hsct_day" in pt:
        parts.append(pd.DataFrame({"patient_id": pt["patient_id"], "event": "allo_hsct",
                                   "day": pt["hsct_day"]})[pt["hsct_day"].notna()])
    end = np.where(pt["os_event"].eq(1).fillna(False), "death", "censored")
    parts.append(pd.DataFrame({"patient_id": pt["patient_id"], "event": end, "day": pt["os_days"]}))
    out = pd.concat(parts, ignore_index=True)
    out["day"] = out["day"].astype(float)
    order = {e: i for i, e in enumerate(SWIMMER_MARKERS)}
    return out.sort_values(["patient_id", "day", "event"], key=lambda s: s.map(order) if s.name == "event" else s,
                           kind="stable").reset_index(drop=True)


def swimmer_lanes(pt: pd.DataFrame) -> pd.DataFrame:
    """One lane per patient: patient_id, best_response, end day (os_days); longest follow-up at the top, ties by id."""
    lanes = pt[["patient_id", "best_response", "os_days"]].rename(columns={"os_days": "end"})
    lanes = lanes.sort_values(["end", "patient_id"], ascending=[True, False], kind="stable")
    return lanes.reset_index(drop=True)


def plot_swimmer(pt: pd.DataFrame, landmark_day: float, ax=None, max_patients: int = 60):
    """Swimmer plot: a bar per patient (pseudonym) from infusion to last follow-up, coloured by best response, with event markers.

    At most `max_patients` lanes: the first pseudonyms (crs.shown_patients, outcome-blind; the title
    says so when patients are left out). Without `ax` the figure height follows the lanes shown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from helpers.crs import shown_patients

    keep, note = shown_patients(pt["patient_id"], max_patients)
    pt = pt[pt["patient_id"].isin(keep)]
    lanes, events = swimmer_lanes(pt), swimmer_events(pt, landmark_day)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.28 * len(lanes) + 1.5))
    y = dict(zip(lanes["patient_id"], range(len(lanes))))
    colours = RESPONSE_COLOURS
    ax.barh(list(y.values()), lanes["end"], height=0.6, color=[colours.get(r, "0.7") for r in lanes["best_response"]],
            alpha=0.45)
    for ev, (marker, colour, _) in SWIMMER_MARKERS.items():
        e = events[events["event"] == ev]
        ax.scatter(e["day"], e["patient_id"].map(y), marker=marker, color=colour,
                   s=70 if ev == "mrd_negative" else 36, zorder=3 + (ev == "mrd_negative"))
    ax.set_yticks(list(y.values()), list(y.keys()), fontsize="small")
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlabel("Days after CAR-T infusion")
    if note:
        ax.set_title(f"Showing the {note}", fontsize="small")
    handles = [Patch(color=colours[r], alpha=0.45, label=f"Best response: {r}") for r in RESPONSES
               if (lanes["best_response"] == r).any()]
    handles += [Line2D([], [], marker=m, color=c, linestyle="", label=lab) for ev, (m, c, lab) in SWIMMER_MARKERS.items()
                if (events["event"] == ev).any()]
    ax.legend(handles=handles, fontsize="small", frameon=False, loc="lower right")
    return ax


def time_to_remission(pt: pd.DataFrame) -> dict:
    """Recorded days from infusion to documented remission among responders: n recorded, median, min, max.

    Only recorded days count (derive's landmark-day assumption is not a measurement); NaN when none.
    """
    rem = pt["remission"].astype(bool)
    recorded = rem & ~pt.get("remission_day_assumed", pd.Series(True, index=pt.index)).astype(bool)
    days = pt.loc[recorded, "remission_day"].astype(float) if "remission_day" in pt else pd.Series(dtype=float)
    stats = {"n_responders": int(rem.sum()), "n_recorded": int(days.notna().sum())}
    stats.update(median=float(days.median()) if len(days) else float("nan"),
                 min=float(days.min()) if len(days) else float("nan"), max=float(days.max()) if len(days) else float("nan"))
    return stats

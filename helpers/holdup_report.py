"""The sections of the page "Does it hold up?": verdicts per published fact, CRS counts per scale, fragility.

Each function takes the chapter's `Page` and returns `Shown` (display table, generated sentences, the
tidy frame behind them) or `Skipped`. The verdicts come from helpers.holdup, the fragility from the
stored run of helpers.fragility (`python -m helpers fragility`), which the build does not repeat.
"""
from __future__ import annotations

import pandas as pd

from helpers import crs, display, fmt, fragility, holdup, labels, published
from helpers.paths import resolve
from helpers.sections import Shown, Skipped, needs

SOURCE = "Published findings paraphrased from the ASH 2020 abstract (Blood 136 Suppl 1: 9; NCT02349698)."
FRAGILE_BELOW = 0.8  # a fact reproduced by fewer than 80% of simulated cohorts is called fragile
PAGE_TITLES = {"notebooks/01_cohort": "The cohort", "notebooks/02_response": "Response",
               "notebooks/03_survival": "Survival", "notebooks/04_crs": "Cytokine release syndrome"}


def verdict(ok: object, applies: bool = True) -> str:
    """A verdict in words: Reproduced, Not reproduced, Not testable (an absent input or a failed fit), or
    Not applicable (no correction applies to the fact)."""
    if not applies:
        return "Not applicable"
    if ok is None or (not isinstance(ok, bool) and pd.isna(ok)):
        return "Not testable"
    return "Reproduced" if bool(ok) else "Not reproduced"


def applies(fact: str) -> bool:
    """Whether a corrected analysis exists for `fact` (F10's check is already the corrected one)."""
    return fact not in holdup.NO_CORRECTION or fact == "F10"


def _reused(page) -> dict:
    """The results the assessment computed once for several facts (kept on the page for its other sections)."""
    return page.__dict__.setdefault("holdup_reuse", {})


def _assessment(page) -> pd.DataFrame:
    if "holdup" not in page.__dict__:
        page.__dict__["holdup"] = holdup.assess(page.data, page.pt, reuse=_reused(page))
    return page.__dict__["holdup"]


def _crs_counts(page) -> pd.DataFrame:
    """holdup.crs_counts_by_scale of the page's cohort, once per page (the F8 verdict graded it already)."""
    return published.shared({"shared": _reused(page)}, "crs_counts", lambda: holdup.crs_counts_by_scale(page.data))


def section_link(fact: str) -> str:
    """A Markdown link from this page to the section where `fact` is analysed in full."""
    from docutils.nodes import make_id

    doc, heading = holdup.WHERE[fact]
    return f"[{PAGE_TITLES.get(doc, doc)}: {heading}](../{doc}.html#{make_id(heading)})"


def _links(facts: pd.Series) -> str:
    groups: dict[str, list[str]] = {}
    for fact in facts:
        groups.setdefault(section_link(fact), []).append(fact)
    return "Analysed in full: " + "; ".join(f"{fmt.join_words(f)} in {link}" for link, f in groups.items()) + "."


def summary_sentence(a: pd.DataFrame) -> str:
    """How many testable facts hold as published and after correction, and which do not."""
    parts = []
    for col, how in (("naive_reproduced", "with the published analyses"),
                     ("corrected_reproduced", "after correction")):
        judged = a[a[col].notna()]
        held = judged[judged[col].astype(bool)]
        failed = judged.loc[~judged[col].astype(bool), "fact"]
        text = (f"{len(held)} of the {len(judged)} facts testable {how} hold on this cohort" if len(judged) else
                f"no fact is testable {how} on this cohort")
        parts.append(text + (f" ({fmt.join_words(failed)} do not)" if len(failed) > 1 else
                             f" ({failed.iat[0]} does not)" if len(failed) == 1 else ""))
    return "; ".join(parts) + "."


def verdicts(page) -> Shown:
    """Each published fact beside this cohort's naive and corrected results, with a verdict per column."""
    a = _assessment(page)
    shown = pd.DataFrame({
        "Fact": a["fact"], "Published finding": a["published"], "As published here": a["naive"],
        "Verdict as published": a["naive_reproduced"].map(verdict),
        "Corrected analysis": [text if text != fmt.MISSING else f"{fmt.MISSING} ({how})"
                               for text, how in zip(a["corrected"], a["correction"])],
        "Verdict corrected": [verdict(ok, applies(f)) for f, ok in zip(a["fact"], a["corrected_reproduced"])],
    })
    counts_note = (f"Counts are reproduced when they equal the published ones at the published size "
                   f"(N = {published.PUBLISHED_N}); at another size when the published proportion lies inside "
                   "this cohort's Clopper-Pearson 95% CI.")
    table = display.table(shown, "tbl-holdup-verdicts", stub="Fact", notes=[SOURCE, counts_note],
                          align_left=["Published finding", "As published here", "Corrected analysis"])
    return Shown(summary_sentence(a), table, _links(a["fact"]), page.download(a, "holdup_verdicts"), data=a)


@needs(tables=("daily",), columns={"daily": crs.GRADING_NEEDS}, what="CRS counts under every grading scale")
def crs_scales(page) -> Shown:
    """Any and severe CRS under each scale (graded from the daily record), against the published counts."""
    v = holdup.scale_verdicts(_crs_counts(page))
    rows = []
    for r in v.itertuples():
        cells = {}
        for name, k in (("Any CRS", r.any_crs), ("Severe CRS", r.severe_crs)):
            lo, hi = published.stats.exact_ci(k, r.n)
            cells[name] = fmt.prop_ci(k, r.n, lo, hi)
        rows.append({"Scale": labels.scale(r.system), **cells, "Verdict": verdict(r.reproduced)})
    severe = page.settings.severe_crs_grade
    notes = [f"Severe CRS: grade {severe} or higher under each scale; Clopper-Pearson 95% CIs.",
             f"Published: {published.PUBLISHED_COUNTS['crs']} of {published.PUBLISHED_N} with CRS, "
             f"{published.PUBLISHED_COUNTS['severe_crs']} of them severe (scale not stated in the abstract)."]
    table = display.table(pd.DataFrame(rows), "tbl-holdup-scales", stub="Scale", notes=notes)
    held = [labels.scale(s) for s in v.loc[v["reproduced"], "system"]]
    text = (f"The published CRS counts are reproduced under {len(held)} of the {len(v)} scales"
            + (f" ({fmt.join_words(held)})." if held else "."))
    return Shown(text, table, page.download(v, "holdup_crs_scales"), data=v)


def share_text(row) -> str:
    """'87.2% (84.0–90.0)': a share with its Clopper-Pearson 95% CI; 'not testable' without judged cohorts."""
    if not applies(row["fact"]) and row["analysis"] == "corrected":
        return "not applicable"
    if not row["judged"]:
        return "not testable"
    return f"{fmt.pct(row['share'])} ({fmt.ci(100 * row['ci_low'], 100 * row['ci_high'], 1)})"


def _stored(page, folder) -> tuple[pd.DataFrame, dict] | None:
    """The stored run's shares (helpers.fragility.shares) and its description, read once per page and folder."""
    memo = page.__dict__.setdefault("fragility_runs", {})
    key = str(resolve(folder))
    if key not in memo:
        stored = fragility.read(resolve(folder))
        memo[key] = None if stored is None else (fragility.shares(stored[0]), stored[1])
    return memo[key]


def fragility_shares(page, folder=fragility.RESULT_DIR) -> pd.DataFrame | None:
    """The stored run's shares (helpers.fragility.shares), or None when no run is stored."""
    stored = _stored(page, folder)
    return None if stored is None else stored[0]


def _fragility_frame(sh: pd.DataFrame, sizes: list[int]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    facts = list(published.FACT_IDS)
    out, spanners = pd.DataFrame({"Fact": facts}), {}
    for n in sizes:
        cols = []
        for analysis, name in (("naive", "As published"), ("corrected", "Corrected")):
            sub = sh[(sh["n"] == n) & (sh["analysis"] == analysis)].set_index("fact")
            col = f"{name}, N = {n}"
            out[col] = [share_text({**sub.loc[f], "fact": f})
                        if f in sub.index else fmt.MISSING for f in facts]
            cols.append(col)
        spanners["Published size" if n == published.PUBLISHED_N else "This cohort's size"] = cols
    return out, spanners


def fragility_section(page, folder=fragility.RESULT_DIR) -> Shown | Skipped:
    """Share of simulated cohorts (other seeds) reproducing each fact, at the published size and this cohort's."""
    stored = _stored(page, folder)
    if stored is None:
        return Skipped("fragility", "no stored fragility run; `python -m helpers fragility --workers 2` makes one.")
    sh, meta = stored
    own = len(page.data.patients)
    sizes = [n for n in dict.fromkeys([published.PUBLISHED_N, own]) if n in set(sh["n"])]
    shown, spanners = _fragility_frame(sh, sizes)
    notes = [f"{fmt.integer(meta['seeds'])} cohorts from the calibrated simulator per size (seeds {meta['first_seed']} to "
             f"{meta['last_seed']}, the shipped cohort's seed excluded); share reproducing the fact with its "
             "Clopper-Pearson 95% CI, among the cohorts where it could be tested.",
             f"Run: {fmt.number(meta['core_seconds_per_cohort'], 2)} core-seconds per cohort, "
             f"{fmt.number(meta['wall_seconds'], 0)} s on {meta['workers']} worker(s).",
             "At the published size the simulator imposes the counts of F1-F3 and F8 (under the grading scale "
             "it was calibrated on) by construction: it ranks latent propensities to reach them, so their shares "
             "there say nothing about sampling."]
    table = display.table(shown, "tbl-holdup-fragility", stub="Fact", spanners=spanners, notes=notes)
    parts = [fragility_sentence(sh, published.PUBLISHED_N)]
    if own != published.PUBLISHED_N:
        parts.append(power_sentence(sh, own))
    return Shown(*parts, table, page.download(sh, "holdup_fragility"), data=sh)


def fragility_sentence(sh: pd.DataFrame, n: int) -> str:
    """Which facts are fragile (corrected share below FRAGILE_BELOW) in simulated cohorts of size n."""
    sub = sh[(sh["n"] == n) & (sh["analysis"] == "corrected") & (sh["judged"] > 0)]
    fragile = sub[sub["share"] < FRAGILE_BELOW].sort_values("share")
    if sub.empty:
        return f"The stored run has no cohorts of N = {fmt.integer(n)}."
    size = "the published size" if n == published.PUBLISHED_N else "this cohort's size"
    where = f"Among cohorts of {size} (N = {fmt.integer(n)}) drawn from the calibrated simulator"
    if fragile.empty:
        return (f"{where}, every fact testable after correction is reproduced by at least "
                f"{fmt.pct(FRAGILE_BELOW, 0)} of them.")
    listed = fmt.join_words(f"{r.fact} ({fmt.pct(r.share)})" for r in fragile.itertuples())
    return (f"{where}, after correction, fewer than "
            f"{fmt.pct(FRAGILE_BELOW, 0)} reproduce {listed}: a study of this size would often not see "
            f"{'it' if len(fragile) == 1 else 'them'}, even if the simulator's mechanisms were true.")


def power_sentence(sh: pd.DataFrame, n: int) -> str:
    """What a cohort of this size could show (the stored shares at n), or how to compute them."""
    if n not in set(sh["n"]):
        return (f"The stored run has no cohorts of this cohort's size (N = {fmt.integer(n)}); "
                f"`python -m helpers fragility --n {published.PUBLISHED_N} {n} --workers 2` computes the share "
                "(the power of a cohort of this size to show each fact, under the simulator).")
    return fragility_sentence(sh, n)


def conclusions(page, folder=fragility.RESULT_DIR) -> Shown:
    """What this page supports, in sentences computed from the verdicts and the stored fragility run."""
    a = _assessment(page)
    both = a[a["naive_reproduced"].eq(True) & a["corrected_reproduced"].eq(True)]["fact"]
    only_naive = a[a["naive_reproduced"].eq(True) & a["corrected_reproduced"].eq(False)]["fact"]
    parts = []
    if len(both):
        parts.append(f"{fmt.join_words(both)} hold on this cohort with the published and with the corrected analyses.")
    if len(only_naive):
        parts.append(f"{fmt.join_words(only_naive)} hold only with the published analyses: the corrections "
                     "described above remove {}.".format("it" if len(only_naive) == 1 else "them"))
    sh = fragility_shares(page, folder)
    if sh is not None:
        parts.append(fragility_sentence(sh, published.PUBLISHED_N))
    if page.data.simulated:
        parts.append("This cohort is simulated: agreement shows that the analyses recover what the simulator "
                     "built in, not that the findings are true of patients.")
    return Shown(" ".join(parts) if parts else "No published fact could be tested on this cohort.", data=a)

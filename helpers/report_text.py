"""Sentences every chapter shares: the banner (which cohort, simulated or not) and the settings it was built with."""
from __future__ import annotations

from helpers import fmt, labels

PARAMETER_WORDS = {
    "n_boot": "bootstrap resamples", "boot_seed": "bootstrap seed", "landmark_day": "landmark day",
    "survival_times_days": "survival estimates at days",
}


def banner(page) -> str:
    """'> Simulated data ...' only when cohort.yml says so; otherwise the cohort's name and size."""
    data = page.data
    n = fmt.plural(len(data.patients), "infused patient")
    if data.simulated:
        return (f"> **Simulated data.** Every number on this page comes from *{data.name}* ({n}), made by the "
                "book's own seeded simulator to match the published counts and directions. It is not patient "
                "data: it shows how the analysis is done, not what is true of patients.")
    return (f"> **Cohort:** *{data.name}* ({n}). Patients are shown only by pseudonymous sequence numbers "
            "(P01, P02, ... in the order of the patients file).")


def parameters_note(page) -> str:
    """The settings and chapter parameters this page was executed with (the cohort by its project path or name)."""
    s = page.settings
    parts = [f"cohort `{page.source}`",
             f"severe CRS = grade {s.severe_crs_grade} or higher under {labels.scale(s.crs_system)}",
             f"remission = {'/'.join(s.remission_responses)}",
             f"landmark day {fmt.number(s.landmark_day, 0)}",
             "follow-up censored at allogeneic HSCT" if s.censor_at_hsct else "follow-up not censored at HSCT"]
    parts += [f"{PARAMETER_WORDS.get(k, labels.words(k).lower())} {v}" for k, v in page.params.items()]
    return "<small>Built with: " + "; ".join(parts) + ".</small>"

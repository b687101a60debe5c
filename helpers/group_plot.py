"""Every patient's value by group as a clinician reads it: points always, a box only where a group has five or more.

One colour for every point of a figure (position, not colour, says the group), so a colour never means one
thing in one panel and another in the next; a box summarises a group only when it has enough patients to
have quartiles worth drawing (fewer than `MIN_BOX` get a median bar). On a log axis a zero is drawn as an
open circle at half the lowest positive value (the LLOQ/2 convention) and the axis note says how many.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MIN_BOX = 5
POINT_COLOUR = "#1f4e79"


def _levels(groups: pd.Series) -> list:
    """Group levels in category order (categoricals) or sorted, only those with a patient."""
    g = groups.dropna()
    order = list(g.cat.categories) if isinstance(g.dtype, pd.CategoricalDtype) else sorted(g.unique(), key=str)
    return [lvl for lvl in order if (g == lvl).any()]


def points_by_group(values: pd.Series, groups: pd.Series, ax, *, log: bool = False, ylabel: str = "",
                    unit_note: str = ""):
    """Points per group (deterministic spread), a box for groups of at least MIN_BOX, a median bar otherwise."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    g = groups.reindex(v.index)
    keep = v.notna().to_numpy() & g.notna().to_numpy()
    v, g = v[keep], g[keep]
    levels = _levels(g)
    if not levels:
        ax.text(0.5, 0.5, "No patient has a value", transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([]), ax.set_yticks([])
        return ax
    positive = v[v > 0]
    floor = float(positive.min()) / 2 if log and len(positive) else np.nan
    shown = v.where(v > 0, floor) if log else v
    for i, lvl in enumerate(levels):
        mask = (g == lvl).to_numpy()
        y = shown[mask].to_numpy(dtype=float)
        if y.size >= MIN_BOX:
            ax.boxplot([y], positions=[i], widths=0.5, showfliers=False, medianprops={"color": "black"},
                       boxprops={"color": "0.45"}, whiskerprops={"color": "0.45"}, capprops={"color": "0.45"})
        else:
            ax.hlines(np.median(y), i - 0.22, i + 0.22, color="black", lw=1.5, zorder=4)
        x = i + (np.linspace(-0.15, 0.15, y.size) if y.size > 1 else np.zeros(y.size))
        zero = (v[mask] <= 0).to_numpy() if log else np.zeros(y.size, bool)
        ax.scatter(x[~zero], y[~zero], s=20, color=POINT_COLOUR, zorder=3, alpha=0.85)
        ax.scatter(x[zero], y[zero], s=20, facecolors="none", edgecolors=POINT_COLOUR, zorder=3)
    ax.set_xticks(range(len(levels)), [f"{lvl}\n(n = {int((g == lvl).sum())})" for lvl in levels])
    ax.set_xlim(-0.6, len(levels) - 0.4)
    notes = [unit_note] if unit_note else []
    n_zero = int((v <= 0).sum()) if log else 0
    if n_zero:
        notes.append(f"open circles: {n_zero} value{'s' if n_zero > 1 else ''} of 0 drawn at half the lowest "
                     "positive value")
    if notes:
        ax.set_xlabel("; ".join(notes), fontsize="small")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    return ax

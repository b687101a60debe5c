"""Cohort description: which baseline and product variables a cohort has, and the patient flow."""
from __future__ import annotations

import pandas as pd

# column -> (kind for tables.table_one, label shown to readers)
BASELINE_VARIABLES: dict[str, tuple[str, str]] = {
    "age_years": ("continuous", "Age, years"),
    "sex": ("categorical", "Sex"),
    "bm_blasts_pct": ("continuous", "Bone-marrow blasts before lymphodepletion, %"),
    "ph_positive": ("binary", "Philadelphia chromosome positive"),
    "prior_lines": ("continuous", "Prior lines of therapy"),
    "prior_allo_hsct": ("binary", "Prior allogeneic HSCT"),
    "extramedullary": ("binary", "Extramedullary disease"),
    "ldh_u_per_l": ("continuous", "LDH, U/L"),
    "car_dose_per_kg": ("continuous", "CAR-T dose, cells/kg"),
    "cd4_cd8_ratio": ("continuous", "Product CD4:CD8 ratio"),
    "product_naive_pct": ("continuous", "Product naive T cells, %"),
    "product_cm_pct": ("continuous", "Product central-memory T cells, %"),
    "product_em_pct": ("continuous", "Product effector-memory T cells, %"),
    "product_eff_pct": ("continuous", "Product effector T cells, %"),
}


def available_variables(pt: pd.DataFrame) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Table 1 variables this cohort has: (kinds, labels, names of the absent ones)."""
    kinds, labels, absent = {}, {}, []
    for col, (kind, label) in BASELINE_VARIABLES.items():
        if col in pt and pt[col].notna().any():
            kinds[col], labels[col] = kind, label
        else:
            absent.append(label)
    return kinds, labels, absent


def flow_counts(pt: pd.DataFrame) -> pd.DataFrame:
    """Patient flow: infused -> evaluable for response -> remission -> MRD-negative remission."""
    rows = [("Infused", len(pt)), ("Evaluable for response", int(pt["best_response"].notna().sum())),
            ("Remission (CR/CRi)", int(pt["remission"].sum()))]
    if "mrd_negative" in pt and pt["mrd_negative"].notna().any():
        rows.append(("MRD-negative remission", int((pt["mrd_negative"].eq(True) & pt["remission"]).sum())))
    return pd.DataFrame(rows, columns=["stage", "n"])

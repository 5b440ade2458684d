"""Identity quality against ground truth, with group counts (never pair enumeration).

Pairs of source records are counted with sum n*(n-1)/2 over groups:
  predicted pairs = pairs sharing a One-ID; true pairs = pairs sharing a true person;
  true positives  = pairs sharing both (groups of (one_id, person_id)).
  precision = TP / predicted pairs, recall = TP / true pairs.
"Recall of what the links allow" divides by the true pairs a deterministic linker could reach at all: pairs of
one person whose records are connected through identifiers that person's own records carry (`reachable`).

    >>> rm = pd.DataFrame({"source": ["pos"] * 3, "source_record_id": ["a", "b", "c"], "one_id": ["X", "X", "Y"]})
    >>> truth = pd.DataFrame({"source": ["pos"] * 3, "source_record_id": ["a", "b", "c"], "person_id": [1, 1, 1]})
    >>> q = pairwise_quality(rm, truth)
    >>> (q["precision"], round(q["recall"], 3), q["under_merged_persons"])
    (1.0, 0.333, 1)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

KEYS = ["source", "source_record_id"]


def _pairs(sizes: pd.Series | np.ndarray) -> int:
    n = np.asarray(sizes, dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


def pairwise_quality(record_map: pd.DataFrame, truth: pd.DataFrame, reachable: pd.DataFrame | None = None,
                     rejections: int | None = None) -> dict:
    """Quality of `record_map` (source, source_record_id, one_id) against `truth` (..., person_id).

    Records without a One-ID count as singletons. `reachable` (optional: source, source_record_id, group_id)
    is the best grouping the links allow; it adds `allowed_pairs` and `recall_of_allowed`.
    """
    df = truth[KEYS + ["person_id"]].merge(record_map[KEYS + ["one_id"]], on=KEYS, how="left")
    singles = df["one_id"].isna()
    df["pred"] = df["one_id"].astype(object)
    df.loc[singles, "pred"] = "_single_" + df.loc[singles, "source"].astype(str) + ":" + df.loc[singles, "source_record_id"].astype(str)
    pred_sizes = df.groupby("pred").size()
    true_sizes = df.groupby("person_id").size()
    both_sizes = df.groupby(["pred", "person_id"]).size()
    tp, pp, tt = _pairs(both_sizes), _pairs(pred_sizes), _pairs(true_sizes)
    persons_per_profile = df.groupby("pred")["person_id"].nunique()
    profiles_per_person = df.groupby("person_id")["pred"].nunique()
    result = {
        "records": int(len(df)),
        "records_without_one_id": int(singles.sum()),
        "persons": int(len(true_sizes)),
        "profiles": int(df.loc[~singles, "pred"].nunique()),
        "true_pairs": tt, "predicted_pairs": pp, "true_positive_pairs": tp,
        "precision": tp / pp if pp else 1.0,
        "recall": tp / tt if tt else 1.0,
        "over_merged_profiles": int((persons_per_profile > 1).sum()),
        "under_merged_persons": int((profiles_per_person > 1).sum()),
        "largest_profile_records": int(pred_sizes.max()) if len(pred_sizes) else 0,
    }
    if reachable is not None:
        r = df.merge(reachable[KEYS + ["group_id"]], on=KEYS, how="left")
        lone = r["group_id"].isna()
        r["group_id"] = r["group_id"].astype(object)
        r.loc[lone, "group_id"] = "_lone_" + r.loc[lone, "source"].astype(str) + ":" + r.loc[lone, "source_record_id"].astype(str)
        # allowed = same person AND linked through identifiers: groups of (person, reachable group)
        allowed = _pairs(r.groupby(["person_id", "group_id"]).size())
        found = _pairs(r.groupby(["person_id", "group_id", "pred"]).size())
        result["allowed_pairs"] = allowed
        result["recall_of_allowed"] = found / allowed if allowed else 1.0
        split = r.groupby(["person_id", "group_id"])["pred"].nunique()
        result["under_merged_persons_linkable"] = int(split.groupby(level=0).max().gt(1).sum())
    if rejections is not None:
        result["guardrail_rejections"] = int(rejections)
    return result


def reachable_groups(record_identifiers: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The grouping the links allow: records of one person connected through identifiers they carry.

    `record_identifiers`: source, source_record_id, node_key (one row per identifier of a record). An identifier
    shared by two persons connects nothing across them (it is split per person), so this is the upper bound
    of a deterministic linker that never over-merges. Returns source, source_record_id, group_id.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ri = record_identifiers[KEYS + ["node_key"]].merge(truth[KEYS + ["person_id"]], on=KEYS)
    recs = ri[KEYS].drop_duplicates().reset_index(drop=True)
    recs["r"] = np.arange(len(recs))
    ri = ri.merge(recs, on=KEYS)
    node = pd.factorize(ri["person_id"].astype(str) + "|" + ri["node_key"])[0] + len(recs)
    n = len(recs) + (node.max() - len(recs) + 1 if len(node) else 0)
    graph = coo_matrix((np.ones(len(ri)), (ri["r"].to_numpy(), node)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    recs["group_id"] = labels[: len(recs)]
    return recs[KEYS + ["group_id"]]

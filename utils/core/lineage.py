"""Lineage: what a registered model was trained on, by which run and code, and how it was judged.

``00_data`` writes one *source record* per data set (the ``leads_source`` and ``clv_source``
datasets): the synthetic generator and its parameters, or your files with their sha256 and
row counts. The model steps turn it, with the run's context and the holdout, into tags on
the model version (``lead2value.*``, visible in the MLflow UI) and a one-line description.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from utils.core import gate

TAG = "lead2value."


def data_source(snapshot: Mapping[str, Mapping[str, Any]], tables: Sequence[str], generator: str,
                parameters: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The source record of a data set from ``00_data``'s raw snapshot.

    ``tables``: the snapshot entries of the data set, the one a model learns from first
    (its rows are the record's rows). Entries whose source is ``synthetic`` came from
    ``generator`` called with ``parameters``; any other source is the user's file (with its
    sha256 when it is a file), and then the record is of kind ``user``. ``what`` names the
    rows ("leads", "customers").
    """
    missing = [t for t in tables if t not in snapshot]
    if missing:
        raise KeyError(f"data_source: the snapshot has no {', '.join(missing)} (it has {', '.join(snapshot)})")
    first = snapshot[tables[0]]
    files: dict[str, dict[str, Any]] = {}
    for table in tables:
        entry = snapshot[table]
        origin = str(entry.get("source", ""))
        # "synthetic", or a note such as "(not given: empty)" for an optional file left out
        if origin and origin != "synthetic" and not origin.startswith("("):
            files.setdefault(origin, {"file": Path(origin).name, "path": origin, "sha256": entry.get("source_sha256"),
                                      "tables": {}})["tables"][table] = entry.get("rows")
    rows = first.get("rows")
    if not files:
        described = ", ".join(f"{key}={value}" for key, value in parameters.items())
        return {"kind": gate.SYNTHETIC, "source": generator, "sha256": first.get("sha256"), "rows": rows,
                "generator": generator, "parameters": dict(parameters), "files": {},
                "description": f"synthetic {what} from {generator} ({described})"}
    primary = next(iter(files.values()))
    others = f" and {len(files) - 1} more file(s)" if len(files) > 1 else ""
    facts = [f"sha256 {primary['sha256'][:12]}" if primary["sha256"] else "",
             f"{rows:,} {what}" if rows is not None else ""]
    facts_text = ", ".join(f for f in facts if f)
    return {"kind": gate.USER, "source": primary["path"], "sha256": primary["sha256"], "rows": rows,
            "generator": None, "parameters": {}, "files": files,
            "description": f"your file {primary['file']}{others}" + (f" ({facts_text})" if facts_text else "")}


def source_of(record: Mapping[str, Any]) -> gate.Source:
    """The gate's view of a source record."""
    return gate.Source(record["kind"], str(record.get("source") or ""), record.get("sha256"),
                       str(record.get("description") or ""))


def version_tags(record: Mapping[str, Any], context: Mapping[str, Any], holdout: Mapping[str, Any], metric: str,
                 score: float, trained_on: str) -> dict[str, str]:
    """The ``lead2value.*`` tags of a model version (MLflow tag values are text)."""
    tags = {
        "data_kind": record["kind"],
        "data_source": record.get("source") or "",
        "data_sha256": record.get("sha256") or "",
        "data_rows": record.get("rows"),
        "data": record.get("description") or "",
        "data_parameters": json.dumps(record.get("parameters") or {}, sort_keys=True),
        "trained_on": trained_on,
        "run_id": context.get("run_id"),
        "profile": context.get("profile"),
        "git_commit": context.get("git_commit") or "unknown",
        "git_dirty": context.get("git_dirty"),
        "interactive": str(bool(context.get("interactive"))).lower(),
        "holdout": holdout.get("definition"),
        "holdout_rows": holdout.get("rows"),
        "holdout_period": holdout.get("period") or "",
        "holdout_sha256": holdout.get("sha256"),
        "holdout_metric": metric,
        "holdout_score": f"{score:.6f}",
    }
    return {TAG + key: "" if value is None else str(value) for key, value in tags.items()}


def description(record: Mapping[str, Any], context: Mapping[str, Any], holdout: Mapping[str, Any], metric: str,
                score: float, trained_on: str) -> str:
    """One line for the MLflow UI: data, holdout score, run and code."""
    period = f", {holdout['period']}" if holdout.get("period") else ""
    commit = (context.get("git_commit") or "unknown")[:10] + (" (dirty)" if context.get("git_dirty") else "")
    where = ("interactive session" if context.get("interactive") else
             f"run {context.get('run_id')} ({context.get('profile')})")
    return (f"{trained_on} · data: {record.get('description')} · {metric} {score:.4f} on the "
            f"{holdout.get('definition')} ({holdout.get('rows'):,} rows{period}) · {where}, commit {commit}")

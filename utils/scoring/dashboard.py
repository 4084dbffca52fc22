"""A one-file HTML dashboard of a scoring run that opens offline.

No CDN: plotly.js is embedded once in the page head and every chart is drawn
from it; the top-leads table is sorted and filtered by a few lines of inline
vanilla JavaScript. The page exposes ``window.dashboardSelfCheck()`` so a
headless browser test can ask how many charts rendered and how many rows the
table shows.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from utils.core.contracts import DataContractError
from utils.scoring import monitoring, summaries
from utils.scoring.predict import PROVENANCE_COLUMNS, SIDE_FILE_PROVENANCE

ID_COLUMNS = ("lead_id", "customer_id")
DATE_FORMAT = "%Y-%m-%d %H:%M"

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
TOP_LEADS_ID = "top-leads"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2933}
header{background:#1f3a5f;color:#fff;padding:16px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{padding:16px 24px;max-width:1400px;margin:auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:16px}
.kpi{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.kpi .v{font-size:24px;font-weight:600}.kpi .l{font-size:12px;color:#52606d}
.kpi.alert .v{color:#b91c1c}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
@media (max-width:1000px){.grid{grid-template-columns:minmax(0,1fr)}}
.grid>section{min-width:0;overflow:hidden}
section.card{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08);
  margin-bottom:16px}
section.card h2{font-size:16px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e4e7eb;text-align:left;white-space:nowrap}
th{background:#f0f4f8;position:sticky;top:0}
#top-leads th{cursor:pointer;user-select:none}
#top-leads th.sorted-asc::after{content:" \\25B2"}#top-leads th.sorted-desc::after{content:" \\25BC"}
.scroll{max-height:480px;overflow:auto}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.status-ok{color:#047857}.status-warn{color:#b45309;font-weight:600}.status-fail{color:#b91c1c;font-weight:700}
input#lead-filter{padding:6px 8px;width:280px;margin:0 8px 8px 0;border:1px solid #cbd2d9;border-radius:4px}
code{font-size:12px}
"""

_TABLE_JS = """
(function () {
  var data = JSON.parse(document.getElementById('top-leads-data').textContent);
  var table = document.getElementById('top-leads');
  var filterBox = document.getElementById('lead-filter');
  var counter = document.getElementById('lead-count');
  var sortIndex = data.sortIndex, descending = true;

  function shown(value) { return value === null || value === undefined ? '' : String(value); }
  function compare(a, b) {
    var x = a[sortIndex], y = b[sortIndex];
    if (x === null && y === null) return 0;
    if (x === null) return 1;  // missing values last, whatever the direction
    if (y === null) return -1;
    var order = data.numeric[sortIndex] ? x - y : String(x).localeCompare(String(y));
    return descending ? -order : order;
  }
  function render() {
    var needle = filterBox.value.trim().toLowerCase();
    var rows = data.rows.filter(function (row) {
      return !needle || row.some(function (v) { return shown(v).toLowerCase().indexOf(needle) >= 0; });
    }).sort(compare);
    var body = document.createElement('tbody');
    rows.forEach(function (row) {
      var tr = document.createElement('tr');
      row.forEach(function (value, i) {
        var td = document.createElement('td');
        td.textContent = data.numeric[i] && value !== null ? Number(value).toFixed(data.decimals[i]) : shown(value);
        if (data.numeric[i]) td.className = 'num';
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.className = i === sortIndex ? (descending ? 'sorted-desc' : 'sorted-asc') : '';
    });
    counter.textContent = rows.length + ' of ' + data.rows.length + ' leads shown';
  }
  var headRow = table.tHead.rows[0];
  data.columns.forEach(function (name, i) {
    var th = document.createElement('th');
    th.textContent = name;
    th.title = 'click to sort';
    th.addEventListener('click', function () {
      descending = sortIndex === i ? !descending : true;
      sortIndex = i;
      render();
    });
    headRow.appendChild(th);
  });
  filterBox.addEventListener('input', render);
  render();
  // Charts are drawn while the page is still parsed; fit them to their final boxes once it is laid out.
  window.addEventListener('load', function () {
    document.querySelectorAll('.js-plotly-plot').forEach(function (p) { window.Plotly.Plots.resize(p); });
  });

  window.dashboardSelfCheck = function () {
    var plots = document.querySelectorAll('.js-plotly-plot');
    var drawn = Array.prototype.filter.call(plots, function (p) { return p.querySelector('.main-svg') !== null; });
    var overflowing = Array.prototype.filter.call(drawn, function (p) {
      var svg = p.querySelector('.main-svg').getBoundingClientRect();
      return svg.width > p.parentElement.getBoundingClientRect().width + 1;
    });
    return {charts: document.querySelectorAll('.chart').length, plotlyDivs: plots.length,
            rendered: drawn.length, overflowing: overflowing.length,
            tableRows: table.tBodies[0].rows.length, dataRows: data.rows.length,
            plotlyLoaded: typeof window.Plotly === 'object'};
  };
})();
"""


def _figure_html(fig, div_id: str) -> str:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 30, "t": 50, "b": 50})
    if fig.layout.height is None:
        fig.update_layout(height=380)
    # Fixed div ids: the same inputs give a byte-identical page.
    body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    return f'<div class="chart">{body}</div>'


def score_distribution_figure(scores: np.ndarray, decision_threshold: float, junk_threshold: float):
    fig = go.Figure(
        go.Histogram(
            x=scores,
            xbins={"start": 0, "end": 1.0001, "size": 0.05},
            marker_color="#3e7cb1",
            hovertemplate="score %{x}<br>%{y} leads<extra></extra>",
        )
    )
    for value, label, colour in (
        (decision_threshold, "decision threshold", "#1f3a5f"),
        (junk_threshold, "junk below", "#b91c1c"),
    ):
        fig.add_vline(x=value, line_dash="dash", line_color=colour, annotation_text=f"{label} {value:g}")
    fig.update_layout(
        title="Lead score distribution", xaxis_title="P(application complete)", yaxis_title="leads", bargap=0.05
    )
    return fig


def score_band_figure(bands: pd.DataFrame):
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(x=bands["band"].astype(str), y=bands["leads"], name="leads", marker_color="#3e7cb1"), secondary_y=False
    )
    fig.add_trace(
        go.Scatter(
            x=bands["band"].astype(str),
            y=bands["expected_l2ac"] * 100,
            name="expected L2AC (%)",
            mode="lines+markers",
            line_color="#e07a1f",
        ),
        secondary_y=True,
    )
    fig.update_layout(title="Leads by score band and expected L2AC", legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="score band")
    fig.update_yaxes(title_text="leads", secondary_y=False)
    fig.update_yaxes(title_text="expected L2AC (%)", range=[0, 100], secondary_y=True)
    return fig


def group_value_figure(summary: pd.DataFrame, group_column: str):
    ordered = summary.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=ordered["total_predicted"],
            y=ordered[group_column].astype(str),
            orientation="h",
            marker_color="#2f9e77",
            customdata=np.column_stack([ordered["customers"], ordered["mean_predicted"]]),
            hovertemplate="%{y}<br>total %{x:,.0f}<br>%{customdata[0]} customers, "
            "mean %{customdata[1]:,.1f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Predicted lifetime value by {group_column.replace('_', ' ')}",
        xaxis_title="total predicted CLV (currency units)",
        yaxis_title=group_column,
        height=max(380, 24 * len(summary) + 120),
    )
    return fig


def decile_figure(deciles: pd.DataFrame):
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(x=deciles["decile"], y=deciles["mean_predicted"], name="mean predicted CLV", marker_color="#2f9e77"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=deciles["decile"],
            y=deciles["cumulative_share_from_top"] * 100,
            name="share of value, this decile and above (%)",
            mode="lines+markers",
            line_color="#7b4fb8",
        ),
        secondary_y=True,
    )
    fig.update_layout(title="Predicted CLV by decile (10 = top tenth)", legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="CLV decile", dtick=1)
    fig.update_yaxes(title_text="mean predicted CLV (currency units)", secondary_y=False)
    fig.update_yaxes(title_text="cumulative share of value (%)", range=[0, 105], secondary_y=True)
    return fig


def drift_figure(drift: dict[str, pd.DataFrame], top: int = 20):
    """PSI of the ``top`` features nearest their fail level, with that level (all are in the table below the charts)."""
    colours = {"ok": "#2f9e77", "warn": "#d97706", "fail": "#dc2626"}
    rows = pd.concat(
        [t.assign(label=name + "." + t["feature"].astype(str)) for name, t in drift.items()], ignore_index=True
    )
    rows = rows.assign(ratio=rows["psi"] / rows["fail_at"]).nlargest(top, "ratio").sort_values("ratio")
    fig = go.Figure(
        go.Bar(
            x=rows["psi"],
            y=rows["label"],
            orientation="h",
            name="PSI",
            marker_color=[colours[s] for s in rows["status"]],
            hovertemplate="%{y}: PSI %{x:.3f}<extra></extra>",
        )
    )
    fig.add_trace(go.Scatter(x=rows["fail_at"], y=rows["label"], mode="markers", name="fail level (this batch size)",
                             marker={"symbol": "line-ns-open", "size": 14, "color": colours["fail"]},
                             hovertemplate="%{y}: fails above %{x:.3f}<extra></extra>"))
    fig.update_layout(
        title=f"Drift vs training data (PSI, {len(rows)} nearest their fail level)",
        xaxis_title="PSI (unitless)",
        height=max(380, 22 * len(rows) + 120),
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def top_leads_payload(leads: pd.DataFrame, columns: list[str], score_column: str, top_n: int) -> dict:
    """The top ``top_n`` leads by score as JSON-ready columns and rows for the inline table."""
    top = leads.sort_values(score_column, ascending=False, kind="stable").head(top_n)[columns].reset_index(drop=True)
    for column in columns:
        if pd.api.types.is_datetime64_any_dtype(top[column]):  # "2022-02-15 10:31", not ISO with milliseconds
            top[column] = top[column].dt.strftime(DATE_FORMAT)
    numeric = [bool(pd.api.types.is_numeric_dtype(top[c]) and not pd.api.types.is_bool_dtype(top[c])
                    and c not in ID_COLUMNS) for c in columns]
    decimals = [3 if c == score_column else _decimals(top[c]) for c in columns]
    rows = json.loads(top.to_json(orient="values", date_format="iso", double_precision=6))
    return {
        "columns": columns,
        "rows": rows,
        "numeric": numeric,
        "decimals": decimals,
        "sortIndex": columns.index(score_column),
    }


def _decimals(column: pd.Series) -> int:
    """Whole numbers stored as floats (counts, flags) show without decimals."""
    if not pd.api.types.is_float_dtype(column):
        return 0
    finite = column.dropna()
    return 0 if finite.empty or bool((finite == finite.round()).all()) else 2


def _kpi(label: str, value: str, alert: bool = False) -> str:
    css = "kpi alert" if alert else "kpi"
    value, label = html.escape(value), html.escape(label)
    return f'<div class="{css}"><div class="v">{value}</div><div class="l">{label}</div></div>'


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def provenance_table(provenance: dict) -> pd.DataFrame:
    """Model name, version, run id and input hash per scored table."""
    rows = []
    for table, entry in sorted(provenance.get("tables", {}).items()):
        rows.append(
            {
                "scored table": table,
                "model": entry.get("model_name") or entry.get("model_uri"),
                "version": entry.get("model_version"),
                "model run id": entry.get("model_run_id"),
                "rows": entry.get("rows"),
                "input": (entry.get("input") or {}).get("file"),
                "input sha256": ((entry.get("input") or {}).get("sha256") or "")[:16],
            }
        )
    return pd.DataFrame(rows)


def data_hash_table(data_hashes: dict[str, dict]) -> pd.DataFrame:
    """Raw inputs of the run (``raw_snapshot.json`` of 00_data): file, rows, source, sha256."""
    return pd.DataFrame(
        [
            {
                "file": name,
                "rows": info.get("rows"),
                "source": info.get("source"),
                "sha256": (info.get("sha256") or "")[:16],
            }
            for name, info in sorted(data_hashes.items())
        ],
        columns=["file", "rows", "source", "sha256"],
    )


def build_dashboard(
    leads: pd.DataFrame,
    customers: pd.DataFrame | None,
    provenance: dict,
    *,
    score_column: str = "p_app_complete",
    value_column: str = "predicted_clv",
    decision_threshold: float = 0.5,
    junk_threshold: float = 0.2,
    top_n: int = 100,
    table_columns: list[str] | None = None,
    group_columns: tuple[str, ...] = ("country",),
    drift: dict[str, pd.DataFrame] | None = None,
    drift_note: str = "",
    data_hashes: dict[str, dict] | None = None,
    title: str = "lead2value · scoring dashboard",
    subtitle: str = "",
) -> str:
    """The dashboard as one HTML string (write it with :func:`write_dashboard`).

    A junk lead is one scored below ``junk_threshold``: the model gives it
    almost no chance to complete an application. ``customers=None`` (a scoring job
    given leads only) leaves the lifetime-value charts out. Drift past a warn or fail
    level opens the page with a banner; ``drift_note`` says what follows from it.
    """
    frames = [(leads, score_column, "<scored leads>")]
    if customers is not None:
        frames.append((customers, value_column, "<scored customers>"))
    for frame, column, name in frames:
        if column not in frame.columns:
            raise DataContractError(name, column, "missing: the dashboard needs it")
    scores = leads[score_column].to_numpy(dtype="float64")
    bands = summaries.band_summary(scores)
    charts = [
        _figure_html(score_distribution_figure(scores, decision_threshold, junk_threshold), "score-distribution"),
        _figure_html(score_band_figure(bands), "score-bands"),
    ]
    values = deciles = None
    if customers is not None:
        values = customers[value_column].to_numpy(dtype="float64")
        deciles = summaries.decile_summary(values)
        charts.append(_figure_html(decile_figure(deciles), "clv-deciles"))
        charts += [
            _figure_html(group_value_figure(summaries.group_summary(customers, g, value_column), g), f"clv-by-{g}")
            for g in group_columns
            if g in customers.columns
        ]
    if drift:
        charts.append(_figure_html(drift_figure(drift), "drift"))
    payload = top_leads_payload(leads, table_columns or default_table_columns(leads, score_column), score_column, top_n)
    # Escaped so no value from the data can close the script element or open a comment in it.
    payload_json = json.dumps(payload).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    hashes = "" if not data_hashes else f"<h2>Raw data hashes</h2>{_html_table(data_hash_table(data_hashes))}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style>
<script>{get_plotlyjs()}</script></head>
<body><header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><main>
{monitoring.drift_banner_html(drift, drift_note) if drift else ""}
<div class="kpis">{_kpi_cards(scores, values, deciles, decision_threshold, junk_threshold)}</div>
<div class="grid">{"".join(f'<section class="card">{c}</section>' for c in charts)}</div>
<section class="card"><h2>Leads by score band</h2>{_html_table(_band_display(bands))}</section>
<section class="card"><h2>Top {len(payload["rows"])} leads</h2>
<input id="lead-filter" type="search" placeholder="filter: any text in a row" aria-label="filter leads">
<span id="lead-count"></span>
<div class="scroll"><table id="{TOP_LEADS_ID}"><thead><tr></tr></thead><tbody></tbody></table></div></section>
{_drift_table(drift) if drift else ""}
<section class="card"><h2>Models and data</h2>{_html_table(provenance_table(provenance))}{hashes}</section>
</main>
<script type="application/json" id="top-leads-data">{payload_json}</script>
<script>{_TABLE_JS}</script>
</body></html>
"""


def _kpi_cards(
    scores: np.ndarray, values: np.ndarray | None, deciles: pd.DataFrame | None, decision_threshold: float,
    junk_threshold: float
) -> str:
    junk_share = float(np.mean(scores < junk_threshold)) if len(scores) else 0.0
    above = float(np.mean(scores >= decision_threshold)) if len(scores) else 0.0
    cards = [
        _kpi("leads scored", f"{len(scores):,}"),
        _kpi(f"share at or above threshold {decision_threshold:g}", f"{above:.1%}"),
        _kpi("expected application completions", f"{scores.sum():,.0f}"),
        _kpi(f"junk leads (score < {junk_threshold:g})", f"{junk_share:.1%}", alert=junk_share > 0.5),
    ]
    if values is not None:
        cards += [
            _kpi("customers scored", f"{len(values):,}"),
            _kpi("total predicted CLV", f"{values.sum():,.0f}"),
            _kpi("value share of top CLV decile", f"{deciles['share_of_value'].iloc[-1]:.1%}" if len(values) else "-"),
        ]
    return "".join(cards)


def _band_display(bands: pd.DataFrame) -> pd.DataFrame:
    return bands.assign(
        share_of_leads=bands["share_of_leads"].map("{:.1%}".format),
        expected_l2ac=bands["expected_l2ac"].map(lambda v: "" if pd.isna(v) else f"{v:.1%}"),
        expected_completions=bands["expected_completions"].map("{:,.1f}".format),
    )


AGE_BANDS = (0, 25, 35, 45, 55, 65, 200)


def customer_segments(customers: pd.DataFrame, source: pd.DataFrame | None, key: str = "customer_id") -> pd.DataFrame:
    """Add country, gender and an age band from the customer table where the scored table lacks them.

    They describe customers for the dashboard; they need not be model inputs.
    """
    out = customers.copy()
    wanted = [
        c for c in ("country", "gender", "age") if source is not None and c in source.columns and c not in out.columns
    ]
    if wanted and key in out.columns and key in source.columns:
        out = out.merge(source[[key, *wanted]].drop_duplicates(key), on=key, how="left", validate="many_to_one")
    if "age" in out.columns and "age_band" not in out.columns:
        labels = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(AGE_BANDS[:-1])] + [f"{AGE_BANDS[-2]}+"]
        out["age_band"] = pd.cut(
            pd.to_numeric(out["age"], errors="coerce"), bins=list(AGE_BANDS), labels=labels, right=False
        ).astype("object")
    return out


def default_table_columns(leads: pd.DataFrame, score_column: str) -> list[str]:
    """The lead's id first (whom to call), the score, then the lead's own columns (provenance has its own table)."""
    ids = [c for c in ID_COLUMNS if c in leads.columns][:1]
    skip = set(PROVENANCE_COLUMNS) | set(SIDE_FILE_PROVENANCE) | {score_column, *ids}
    return [*ids, score_column] + [c for c in leads.columns if c not in skip][:8]


def _drift_table(drift: dict[str, pd.DataFrame]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(r.feature))}</td><td>{r.kind}</td>"
        f'<td class="num">{r.psi:.3f}</td><td class="num">{r.warn_at:.3f}</td><td class="num">{r.fail_at:.3f}</td>'
        f'<td class="num">{r.unseen_share:.1%}</td><td class="status-{r.status}">{r.status}</td></tr>'
        for name, table in drift.items()
        for r in table.itertuples()
    )
    return (
        '<section class="card"><h2>Drift per feature</h2><p>Warn and fail levels: the usual PSI rules of thumb, '
        "raised for small batches to what a batch of this size drawn from the training data itself would show "
        "(see 05_scoring).</p><div class=\"scroll\"><table><thead><tr><th>table</th>"
        "<th>feature</th><th>kind</th><th>PSI</th><th>warn above</th><th>fail above</th><th>unseen levels</th>"
        "<th>status</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def write_dashboard(page: str, path: str | Path) -> Path:
    """Write the page built by :func:`build_dashboard` (UTF-8; the folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path

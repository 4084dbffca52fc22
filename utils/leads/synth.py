"""Synthetic CodePro leads in the exact raw 45-column schema, calibrated to the real sample.

No real row ships with the project. :func:`calibrate_from_real` was run once on the real
``leads_labelled_25k.csv`` and wrote rounded constants to
``utils/resources/codepro_leads_calibration.json``: the monthly channel mix, counts of
(platform, source, medium) combinations, city frequencies, leads-dropped and referral
rates per platform, the interaction-flag pattern, and a logistic model of conversion.
:func:`generate_leads` draws from those constants with numpy (240,000 rows in seconds).

Only real leads created before :data:`CALIBRATION_CUTOFF` (2021-12-01) were read: 16,424 of
the 24,991, months 2021-07 .. 2021-11. Models are judged on real data on time holdouts of
that file, and the generator must not have seen them, or a model trained on synthetic
leads wins the promotion gate with knowledge of the holdout. On the latest 20 % of the
real file, ROC AUC of the generator's own log-odds: 0.795 with constants fitted on every
row, 0.769 with this cut-off; of LightGBM trained on 240,000 synthetic leads: 0.792 and
0.768. The holdouts and where they start: the latest 20 % of the file (the
function-level split, ``lead_model.time_split(clean, 0.8)``) from 2021-12-29 18:02;
``run_all.py --profile real`` (00 sets the latest 10 % aside as new leads, 03 holds out
the latest 20 % of the rest, i.e. the file's 72 % .. 90 %) from 2021-12-14 15:28. The
cut-off is the first month boundary before both, so every calibrated month is whole.
Any other holdout on this file must start on or after 2021-12-01 too.

Months after the last calibrated one (the rest of the default period, to 2022-02-14, and
the new leads to 2022-03-31) have no constants of their own: they repeat the last
calibrated month's daily volume, channel mix and conversion drift (month effect). That
is the forecast made without looking ahead, and it agrees with the clamp the month
effect always had (:func:`_month_key`). A mean over the calibrated months would undo
a steady drift, e.g. platform Level4's share fell from 15 % (2021-08) to 1 % (2021-11).

How a lead is drawn, in order:
1. a day (monthly volume x weekday pattern) and an hour of day;
2. a platform group (top platforms + "other"), with the mix of its month; then a
   (platform, source, medium) combination of that group, or a rare combination;
3. a city (missing at the group's rate), leads dropped and referral (group's rates);
4. the target: Bernoulli(sigmoid(log-odds)), the log-odds summing effects of platform,
   medium, source, city tier, leads dropped, referral, month (time drift) and two
   interactions, platform x "dropped several leads" and source x "dropped several leads",
   all fitted on the real leads before the cut-off (a logistic regression), then
   sharpened by SIGNAL_SCALE;
5. about 0.4% exact duplicates, as in the full 240,000-row file (1,036 dropped by cleaning).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from sklearn.linear_model import LogisticRegression

from utils.core.hashing import sha256_file
from utils.leads.schema import INTERACTION_COLUMNS, LEADS_COLUMNS, LEADS_FEATURE_COLUMNS, LEADS_TARGET, read_leads

CALIBRATION_FILE = Path(__file__).resolve().parent / "resources" / "codepro_leads_calibration.json"
# The shipped constants read only real leads created before this date (see the module docstring):
# every holdout that judges models on the real file starts after it.
CALIBRATION_CUTOFF = "2021-12-01"
ABOUT = ("Calibration constants for utils/leads/synth.py, derived by calibrate_from_real() from the real "
         "CodePro sample, reading only leads created before source.cutoff (every real holdout starts after it; "
         "later months repeat the last calibrated month's volume, channel mix and drift); "
         "counts and shares only, no rows.")
TRAIN_START, TRAIN_END = "2021-07-01", "2022-02-14"
NEW_START, NEW_END = "2022-02-15", "2022-03-31"
# Full file: 240,000 raw rows, 238,964 after dropping exact duplicates.
DUPLICATE_RATE = round(1 - 238_964 / 240_000, 4)
TOP_PLATFORMS = 8        # platforms with their own channel mix, city and leads-dropped pattern
OTHER = "other"
MIN_COMBINATION_COUNT = 3  # rarer (platform, source, medium) combinations are drawn level by level
MIN_LEVEL_COUNT = 30     # rarer levels share one log-odds, "rare"
MIN_CITY_COUNT = 5       # rarer cities are drawn as anonymous towns (unmapped: tier 3)
DROPPED_BINS = ("1", "2", "3", "4", "5", "6+")
# The fitted effects, sharpened: the real sample holds interactions a main-effects model
# misses, and with this factor LightGBM on the 6 cleaned features scores about what it
# scores on the real leads (see tests/test_synth_leads.py). Checked against the real leads
# created before the cut-off only, never a holdout: LightGBM with the original tuned
# settings on the original 6 cleaned features, 5-fold CV ROC AUC 0.832 on those 16,424 real
# leads, 0.833 on 16,424 synthetic leads of the same months (0.807 with a factor of 1.0).
SIGNAL_SCALE = 1.25
REGULARISATION_C = 5.0   # mild L2: rare levels shrink towards "rare", strong effects stay strong


# --- the keys the conversion model uses (shared by fitting and generating) --------------------


def _platform_group(platform: pd.Series, top: list[str]) -> np.ndarray:
    return np.where(platform.isin(top), platform.to_numpy(dtype=object), OTHER)


def _month_key(created: pd.Series, months: list[str]) -> np.ndarray:
    """YYYY-MM, clamped to the calibrated months: after the last month the drift stays put."""
    # Integer months then a lookup: strftime on 240,000 stamps costs a second.
    codes = (created.dt.year * 100 + created.dt.month).to_numpy()
    first, last = (int(m.replace("-", "")) for m in (months[0], months[-1]))
    codes = np.clip(codes, first, last)
    names = {c: f"{c // 100:04d}-{c % 100:02d}" for c in np.unique(codes)}
    return pd.Series(codes).map(names).to_numpy(dtype=object)


def _city_key(city: pd.Series, tiers: dict[str, int]) -> np.ndarray:
    tier = city.map(tiers).fillna(3).astype(int).astype(str)
    return np.where(city.isna(), "missing", "tier" + tier).astype(object)


def _dropped_key(dropped: pd.Series) -> np.ndarray:
    capped = dropped.clip(upper=4).fillna(-1).astype(int).astype(str).to_numpy(dtype=object)
    return np.select([capped == "-1", capped == "4"], ["missing", "4+"], capped).astype(object)


def model_keys(frame: pd.DataFrame, model: dict) -> pd.DataFrame:
    """One categorical key per term of the conversion model, e.g. platform='Level0', city='tier1'."""
    def level(column: str, table: dict) -> np.ndarray:
        values = frame[column]
        return np.where(values.isin(list(table)), values.to_numpy(dtype=object), "rare").astype(object)

    platform = level("first_platform_c", model["platform"])
    source = level("first_utm_source_c", model["source"])
    several = frame["total_leads_droppped"].fillna(0).to_numpy() >= 2
    return pd.DataFrame({
        "platform": platform,
        "medium": level("first_utm_medium_c", model["medium"]),
        "source": source,
        "city": _city_key(frame["city_mapped"], model["city_tiers"]),
        "leads_dropped": _dropped_key(frame["total_leads_droppped"]),
        "referred": np.where(frame["referred_lead"].to_numpy() == 1, "1", "0").astype(object),
        "month": _month_key(frame["created_date"], sorted(model["month"])),
        "platform_several_leads": np.where(several, platform, "none").astype(object),
        "source_several_leads": np.where(several, source, "none").astype(object),
    }, index=frame.index)


def conversion_log_odds(frame: pd.DataFrame, model: dict) -> np.ndarray:
    """The true log-odds of conversion of each lead under the generator's model."""
    keys = model_keys(frame, model)
    effects = np.zeros(len(frame))
    for term in keys.columns:
        effects += keys[term].map(model[term]).fillna(0.0).to_numpy(dtype=float)
    return float(model["intercept"]) + float(model.get("signal_scale", 1.0)) * effects


# --- calibration (run once on the real file) --------------------------------------------------


def calibrate_from_real(path: str | Path, city_tiers_path: str | Path | None = None,
                        cutoff: str | pd.Timestamp | None = None) -> dict:
    """Derive the generator's constants from a real raw leads file (CSV or parquet).

    One-off: ``calibrate_from_real(".../leads_labelled_25k.csv", cutoff=CALIBRATION_CUTOFF)``
    was run and its result saved with :func:`save_calibration`. ``cutoff`` (a date): rows
    created on or after it are dropped right after the file is read (only their
    ``created_date`` is parsed, to drop them), so no constant depends on them; ``None`` uses
    every row. The cut-off and the number of rows used are recorded in ``source``.
    ``city_tiers_path`` (default: city_tier_mapping.csv beside the file) gives each frequent
    city its tier; other cities count as tier 3. Frequencies are rounded counts and shares,
    log-odds are rounded to 2 decimals.
    """
    path = Path(path)
    raw = read_leads(path, created_before=cutoff)
    if raw.empty:
        raise ValueError(f"{path.name}: no lead created before the cut-off {cutoff}")
    tiers_file = Path(city_tiers_path) if city_tiers_path else path.parent / "city_tier_mapping.csv"
    all_tiers = {}
    if tiers_file.is_file():
        mapping = pd.read_csv(tiers_file)
        all_tiers = dict(zip(mapping["city_mapped"], mapping["city_tier"].astype(int)))
    top = raw["first_platform_c"].value_counts().index[:TOP_PLATFORMS].tolist()
    group = pd.Series(_platform_group(raw["first_platform_c"], top), index=raw.index)
    calibration = {
        "about": ABOUT,
        # rows: the rows used (created before the cut-off); sha256: of the whole file.
        "source": {"file": path.name, "rows": len(raw), "cutoff": _date_text(cutoff), "sha256": sha256_file(path)},
        "duplicate_rate": DUPLICATE_RATE,
        "dates": _calibrate_dates(raw["created_date"]),
        "channels": _calibrate_channels(raw, group, top),
        "cities": _calibrate_cities(raw, group, all_tiers),
        "leads": _calibrate_leads(raw, group),
        "interactions": _calibrate_interactions(raw),
        "target_rate": round(float(raw[LEADS_TARGET].mean()), 4),
    }
    calibration["model"] = _fit_conversion_model(raw, calibration)
    calibration["model"]["signal_scale"] = SIGNAL_SCALE
    calibration["model"]["intercept"] = _match_target_rate(calibration)
    return calibration


def _date_text(cutoff: str | pd.Timestamp | None) -> str | None:
    if cutoff is None:
        return None
    stamp = pd.Timestamp(cutoff)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _shares(counts: pd.Series, digits: int = 4) -> dict[str, float]:
    return {str(k): round(float(v), digits) for k, v in (counts / counts.sum()).items()}


def _calibrate_dates(created: pd.Series) -> dict:
    months = created.dt.to_period("M")
    first, last = created.min().normalize(), created.max().normalize()
    days = pd.Series(pd.date_range(first, last, freq="D")).dt.to_period("M").value_counts()
    per_day = months.value_counts() / days
    return {
        "start": str(first.date()), "end": str(last.date()),
        "leads_per_day_by_month": {str(m): round(float(v), 1) for m, v in per_day.sort_index().items()},
        "hour_shares": [round(float(v), 4) for v in created.dt.hour.value_counts(normalize=True).reindex(range(24), fill_value=0)],
        "weekday_shares": [round(float(v), 4) for v in created.dt.dayofweek.value_counts(normalize=True).reindex(range(7), fill_value=0)],
    }


def _calibrate_channels(raw: pd.DataFrame, group: pd.Series, top: list[str]) -> dict:
    month = raw["created_date"].dt.strftime("%Y-%m")
    mix = pd.crosstab(month, group, normalize="index").round(4)
    combos = raw.groupby(["first_platform_c", "first_utm_source_c", "first_utm_medium_c"]).size()
    frequent = combos[combos >= MIN_COMBINATION_COUNT]
    key = list(zip(raw["first_platform_c"], raw["first_utm_source_c"], raw["first_utm_medium_c"]))
    rare = ~pd.Series(key, index=raw.index).isin(set(frequent.index))
    return {
        "top_platforms": top,
        "group_shares_by_month": {m: {g: float(v) for g, v in row.items() if v > 0} for m, row in mix.iterrows()},
        "combinations": [[p, s, m, int(c)] for (p, s, m), c in frequent.items()],
        # Share of each group's leads on a rare combination, and the levels such leads have.
        "rare_share_by_group": {str(g): round(float(v), 4) for g, v in rare.groupby(group).mean().items()},
        "rare_other_platforms": {str(k): int(v) for k, v in raw.loc[rare & (group == OTHER), "first_platform_c"].value_counts().items()},
        "rare_sources": {str(k): int(v) for k, v in raw.loc[rare, "first_utm_source_c"].value_counts().items()},
        "rare_media": {str(k): int(v) for k, v in raw.loc[rare, "first_utm_medium_c"].value_counts().items()},
    }


def _calibrate_cities(raw: pd.DataFrame, group: pd.Series, all_tiers: dict) -> dict:
    city = raw["city_mapped"]
    counts = city.value_counts()
    frequent = counts[counts >= MIN_CITY_COUNT]
    return {
        "missing_share_by_group": {str(g): round(float(v), 4) for g, v in city.isna().groupby(group).mean().items()},
        "counts": {str(k): int(v) for k, v in frequent.items()},
        "tiers": {str(k): int(all_tiers[k]) for k in frequent.index if k in all_tiers and all_tiers[k] != 3},
        "rare_share": round(float(counts[counts < MIN_CITY_COUNT].sum() / counts.sum()), 4),
        "rare_distinct": int((counts < MIN_CITY_COUNT).sum()),
    }


def _calibrate_leads(raw: pd.DataFrame, group: pd.Series) -> dict:
    dropped = raw["total_leads_droppped"]
    binned = dropped.clip(upper=6).map(lambda v: "6+" if v >= 6 else str(int(v)) if pd.notna(v) else None)
    by_group = pd.crosstab(group, binned, normalize="index").reindex(columns=list(DROPPED_BINS), fill_value=0)
    tail = dropped[dropped >= 6].value_counts()
    return {
        "missing_share": round(float(dropped.isna().mean()), 4),
        "dropped_shares_by_group": {g: [round(float(v), 4) for v in row] for g, row in by_group.iterrows()},
        "dropped_tail_counts": {str(int(k)): int(v) for k, v in tail.sort_index().items()},
        "referred_share_by_group": {str(g): round(float(v), 4) for g, v in (raw["referred_lead"] == 1).groupby(group).mean().items()},
    }


def _calibrate_interactions(raw: pd.DataFrame) -> dict:
    flags = raw[list(INTERACTION_COLUMNS)]
    present = flags.notna()
    rows = present.any(axis=1)
    values = np.log(flags.stack().clip(lower=1))
    return {
        "row_share": round(float(rows.mean()), 5),
        "flags_per_row_counts": {str(k): int(v) for k, v in present[rows].sum(axis=1).value_counts().sort_index().items()},
        # +0.5: every flag can appear, the ones seen in the sample more often.
        "column_weights": {c: float(present[c].sum()) + 0.5 for c in INTERACTION_COLUMNS},
        "log_value_mean": round(float(values.mean()), 3) if len(values) else 1.0,
        "log_value_sd": round(float(values.std()), 3) if len(values) > 1 else 1.0,
    }


def _fit_conversion_model(raw: pd.DataFrame, calibration: dict) -> dict:
    """A logistic regression on one-hot model keys; its coefficients become the generator's log-odds."""
    def frequent(column: str) -> dict:
        counts = raw[column].value_counts()
        return {str(k): 0.0 for k in counts[counts >= MIN_LEVEL_COUNT].index}

    months = sorted(raw["created_date"].dt.strftime("%Y-%m").unique())
    skeleton = {"platform": frequent("first_platform_c"), "medium": frequent("first_utm_medium_c"),
                "source": frequent("first_utm_source_c"), "city_tiers": calibration["cities"]["tiers"],
                "month": {m: 0.0 for m in months}}
    keys = model_keys(raw, skeleton)
    design = pd.get_dummies(keys, prefix_sep="=", dtype=float)
    fit = LogisticRegression(C=REGULARISATION_C, max_iter=5000).fit(design.to_numpy(), raw[LEADS_TARGET].to_numpy())
    model: dict = {"intercept": round(float(fit.intercept_[0]), 2), "city_tiers": skeleton["city_tiers"]}
    for name, coefficient in zip(design.columns, fit.coef_[0]):
        term, level = name.split("=", 1)
        model.setdefault(term, {})[level] = round(float(coefficient), 2)
    return model


def _match_target_rate(calibration: dict, n: int = 200_000) -> float:
    """The intercept that gives synthetic leads the real conversion rate (a one-dimensional root)."""
    frame = generate_leads(n, 0, calibration=calibration, with_target=False)
    rest = conversion_log_odds(frame, calibration["model"]) - calibration["model"]["intercept"]
    rate = calibration["target_rate"]
    root = brentq(lambda b: float(np.mean(1 / (1 + np.exp(-(b + rest))))) - rate, -10, 10)
    return round(float(root), 3)


def save_calibration(calibration: dict, path: str | Path = CALIBRATION_FILE) -> Path:
    """Write the constants as JSON, each list of plain values on one line (short, readable diffs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(calibration, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_calibration(path: str | Path = CALIBRATION_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- generation -------------------------------------------------------------------------------


def generate_leads(
    n: int,
    random_seed: int,
    start: str = TRAIN_START,
    end: str = TRAIN_END,
    with_target: bool = True,
    calibration: dict | None = None,
) -> pd.DataFrame:
    """``n`` raw leads created between ``start`` and ``end`` (whole days, inclusive).

    Columns and dtypes as ``leads_raw.parquet``: created_date datetime64[ns], levels as
    object, numeric flags float64 with NaN, ``app_complete_flag`` int64 (dropped when
    ``with_target`` is False). The same seed gives the same frame.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cal = calibration if calibration is not None else load_calibration()
    rng = np.random.default_rng(random_seed)
    n_duplicates = round(n * cal["duplicate_rate"]) if n >= 100 else 0
    base = n - n_duplicates
    created = _draw_created(rng, base, start, end, cal["dates"])
    group = _draw_groups(rng, created, cal["channels"])
    platform, source, medium = _draw_channels(rng, group, cal["channels"])
    frame = pd.DataFrame({
        "created_date": created,
        "city_mapped": _draw_cities(rng, group, cal["cities"]),
        "first_platform_c": platform,
        "first_utm_medium_c": medium,
        "first_utm_source_c": source,
    })
    frame["total_leads_droppped"], frame["referred_lead"] = _draw_leads(rng, group, cal["leads"])
    frame = pd.concat([frame, _draw_interactions(rng, base, cal["interactions"])], axis=1)
    # Drawn even without a target, so the features of a seed never depend on with_target.
    uniforms = rng.random(base)
    if with_target and "model" in cal:
        probability = 1 / (1 + np.exp(-conversion_log_odds(frame, cal["model"])))
        frame[LEADS_TARGET] = (uniforms < probability).astype("int64")
    copies = frame.iloc[rng.integers(0, max(base, 1), n_duplicates)] if n_duplicates else frame.iloc[:0]
    frame = pd.concat([frame, copies], ignore_index=True)
    frame = frame.sort_values("created_date", kind="stable").reset_index(drop=True)
    columns = LEADS_COLUMNS if LEADS_TARGET in frame.columns else LEADS_FEATURE_COLUMNS
    return frame[list(columns)]


def generate_new_leads(n: int, random_seed: int, start: str = NEW_START, end: str = NEW_END) -> pd.DataFrame:
    """New leads to score: created after the training period, without the target.

    Their own random stream (seed, 1): not a re-draw of the training leads.
    """
    return generate_leads(n, int(np.random.SeedSequence([random_seed, 1]).generate_state(1)[0]),
                          start=start, end=end, with_target=False)


def _draw_created(rng: np.random.Generator, n: int, start: str, end: str, dates: dict) -> pd.Series:
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    if len(days) == 0:
        raise ValueError(f"empty date range: {start} .. {end}")
    per_month = dates["leads_per_day_by_month"]
    # A month outside the calibrated ones has the volume of the nearest calibrated month,
    # as its channel mix (_draw_groups) and its conversion drift (_month_key) do.
    keys = _month_key(pd.Series(days), sorted(per_month))
    volume = pd.Series(keys).map(per_month).to_numpy(dtype=float)
    weight = volume * np.asarray(dates["weekday_shares"])[days.dayofweek]
    day = rng.choice(len(days), size=n, p=weight / weight.sum())
    hours = np.asarray(dates["hour_shares"])
    hour = rng.choice(24, size=n, p=hours / hours.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=n)
    return pd.Series(days.to_numpy()[day] + seconds.astype("timedelta64[s]"), name="created_date").astype("datetime64[ns]")


def _draw_groups(rng: np.random.Generator, created: pd.Series, channels: dict) -> np.ndarray:
    mixes = channels["group_shares_by_month"]
    months = sorted(mixes)
    keys = _month_key(created, months)
    group = np.empty(len(created), dtype=object)
    for month in months:
        rows = np.flatnonzero(keys == month)
        names, shares = list(mixes[month]), np.array(list(mixes[month].values()))
        group[rows] = np.asarray(names, dtype=object)[rng.choice(len(names), size=len(rows), p=shares / shares.sum())]
    return group


def _pick(rng: np.random.Generator, counts: dict, size: int) -> np.ndarray:
    names = np.asarray(list(counts), dtype=object)
    weights = np.asarray(list(counts.values()), dtype=float)
    return names[rng.choice(len(names), size=size, p=weights / weights.sum())]


def _draw_channels(rng: np.random.Generator, group: np.ndarray, channels: dict) -> tuple[np.ndarray, ...]:
    combos = pd.DataFrame(channels["combinations"], columns=["platform", "source", "medium", "count"])
    top = channels["top_platforms"]
    combos["group"] = _platform_group(combos["platform"], top)
    out = [np.empty(len(group), dtype=object) for _ in range(3)]
    for name in sorted(set(group)):
        rows = np.flatnonzero(group == name)
        rare = rng.random(len(rows)) < channels["rare_share_by_group"].get(name, 0.0)
        own = combos[combos["group"] == name]
        if len(own) == 0:
            rare[:] = True
        else:
            pick = rng.choice(len(own), size=int((~rare).sum()), p=own["count"] / own["count"].sum())
            for part, column in zip(out, ("platform", "source", "medium")):
                part[rows[~rare]] = own[column].to_numpy(dtype=object)[pick]
        n_rare = int(rare.sum())
        out[0][rows[rare]] = _pick(rng, channels["rare_other_platforms"], n_rare) if name == OTHER else name
        out[1][rows[rare]] = _pick(rng, channels["rare_sources"], n_rare)
        out[2][rows[rare]] = _pick(rng, channels["rare_media"], n_rare)
    return tuple(out)


def _draw_cities(rng: np.random.Generator, group: np.ndarray, cities: dict) -> np.ndarray:
    n = len(group)
    city = _pick(rng, cities["counts"], n)
    rare = rng.random(n) < cities["rare_share"]
    # Anonymous small towns: absent from every tier mapping, as most rare real cities are.
    town = rng.zipf(1.6, size=n) % max(cities["rare_distinct"], 1)
    city[rare] = np.char.add("town_", np.char.zfill(town[rare].astype(str), 4)).astype(object)
    missing = rng.random(n) < pd.Series(group).map(cities["missing_share_by_group"]).fillna(0.0).to_numpy()
    city[missing] = None
    return city


def _draw_leads(rng: np.random.Generator, group: np.ndarray, leads: dict) -> tuple[np.ndarray, np.ndarray]:
    n = len(group)
    dropped = np.ones(n, dtype=float)
    tail = leads["dropped_tail_counts"]
    for name, shares in leads["dropped_shares_by_group"].items():
        rows = np.flatnonzero(group == name)
        p = np.asarray(shares, dtype=float)
        bins = rng.choice(len(DROPPED_BINS), size=len(rows), p=p / p.sum())
        dropped[rows] = bins + 1.0
    several = dropped >= 6
    dropped[several] = _pick(rng, tail, int(several.sum())).astype(float) if tail else 6.0
    referred = (rng.random(n) < pd.Series(group).map(leads["referred_share_by_group"]).fillna(0.0).to_numpy()).astype(float)
    missing = rng.random(n) < leads["missing_share"]
    dropped[missing] = np.nan
    referred[missing] = np.nan  # the real file loses both on the same rows
    return dropped, referred


def _draw_interactions(rng: np.random.Generator, n: int, spec: dict) -> pd.DataFrame:
    values = np.full((n, len(INTERACTION_COLUMNS)), np.nan)
    rows = np.flatnonzero(rng.random(n) < spec["row_share"])
    weights = np.array([spec["column_weights"][c] for c in INTERACTION_COLUMNS])
    per_row = _pick(rng, spec["flags_per_row_counts"], len(rows)).astype(int)
    for row, k in zip(rows, per_row):
        columns = rng.choice(len(INTERACTION_COLUMNS), size=min(k, len(INTERACTION_COLUMNS)), replace=False,
                             p=weights / weights.sum())
        counts = np.exp(rng.normal(spec["log_value_mean"], spec["log_value_sd"], size=len(columns)))
        values[row, columns] = np.maximum(1.0, np.round(counts))
    return pd.DataFrame(values, columns=list(INTERACTION_COLUMNS))

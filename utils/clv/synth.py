"""Synthetic customer-lifetime-value sources: customers, web actions, campaigns, purchases.

A made-up online shop whose data behave like real ones where a CLV model cares:

* each customer has a hidden engagement ``z``; early web activity, key actions
  (add_to_cart, checkout) and a first purchase are noisy signs of it;
* later spend depends on ``z``, on the GDP per capita of the customer's country, on the
  key actions and the first purchase, on age, and on the campaigns received in the first
  weeks (channel effects: sms > email > push > social);
* most customers (about 55-60%) buy nothing after their first weeks; the others'
  orders are log-normal, so spend is heavy-tailed; a few orders are refunded later
  (negative amounts);
* countries are named as exports name them ("United Kingdom", "EIRE", "RSA", "USA"),
  with a few names no GDP table can match ("Unspecified", "Channel Islands").

All draws are vectorised numpy: 50,000 customers take a few seconds. Same seed, same data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from utils.clv import gdp
from utils.clv.schema import CLV_CHANNELS as CHANNELS

CHANNEL_SHARES = (0.50, 0.15, 0.22, 0.13)
# Change in the log rate of later orders per campaign received in the early weeks.
CHANNEL_EFFECTS = {"email": 0.10, "sms": 0.20, "push": 0.04, "social": -0.04}
EARLY_DAYS = 28              # "the first weeks" of a customer
CAMPAIGNS_PER_30_DAYS = 0.9
REFUND_SHARE = 0.04          # of orders, refunded in part or in full within a month
REFERENCE_GDP = 20_000.0     # US$ per person; GDP effects are on log(gdp / this)

ACTIONS = ("view_product", "search", "view_offer", "add_to_wishlist", "login", "add_to_cart", "checkout")
KEY_ACTIONS = ("add_to_cart", "checkout")
ACTION_PAGES = {
    "view_product": ("product",), "search": ("search", "category"), "view_offer": ("offers", "home"),
    "add_to_wishlist": ("product", "wishlist"), "login": ("account", "home"),
    "add_to_cart": ("product", "cart"), "checkout": ("checkout",),
}
GENDERS = ("female", "male", "unknown")
GENDER_SHARES = (0.50, 0.46, 0.04)

# Shares of customers by country as an export spells it; the rest go to other gapminder countries.
COUNTRY_SHARES = {
    "United Kingdom": 0.40, "Germany": 0.07, "France": 0.07, "USA": 0.05, "EIRE": 0.04, "Spain": 0.03,
    "Netherlands": 0.03, "Italy": 0.02, "Belgium": 0.02, "Switzerland": 0.02, "Australia": 0.02,
    "Portugal": 0.015, "Norway": 0.015, "Sweden": 0.015, "India": 0.015, "Denmark": 0.01, "Finland": 0.01,
    "Japan": 0.01, "Canada": 0.01, "Poland": 0.01, "Austria": 0.01, "RSA": 0.01, "Brazil": 0.01,
    "Singapore": 0.005, "Hong Kong": 0.005,
    # No ISO code or no GDP row: counted downstream, never dropped.
    "Unspecified": 0.006, "Channel Islands": 0.004, "European Community": 0.002,
    "Cyprus": 0.003, "Lithuania": 0.002, "Malta": 0.002,
}


def generate_clv(n_customers: int, random_seed: int, start: str = "2021-01-01",
                 end: str = "2022-12-31") -> dict[str, pd.DataFrame]:
    """The four CLV sources for ``n_customers`` customers signing up between start and end.

    Keys: customers, web_actions, campaigns, purchases, in the contract's schemas
    (customer_id int64, timestamps datetime64[ns], age nullable Int64, amount float64
    net of refunds, n_items int64). Events after ``end`` are cut off: the data end there.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    rng = np.random.default_rng(random_seed)
    t0 = pd.Timestamp(start)
    span_days = (pd.Timestamp(end) + pd.Timedelta(days=1) - t0) / pd.Timedelta(days=1)
    people = _draw_customers(rng, n_customers, span_days)
    web, key_actions = _draw_web_actions(rng, people, span_days)
    campaigns, early_campaigns = _draw_campaigns(rng, people, span_days)
    purchases = _draw_purchases(rng, people, key_actions, early_campaigns, span_days)
    return {
        "customers": _customers_frame(people, t0),
        "web_actions": _events_frame(web, t0, "timestamp", ["page", "action"]),
        "campaigns": _campaigns_frame(campaigns, t0),
        "purchases": _purchases_frame(purchases, t0),
    }


# --- customers --------------------------------------------------------------------------------


def country_shares() -> dict[str, float]:
    """Every country name the generator uses and its share of customers (sums to 1)."""
    shares = dict(COUNTRY_SHARES)
    taken = {gdp.country_to_iso3(name) for name in shares}
    others = [c for c, iso in zip(gdp.gdp_table()["country"], gdp.gdp_table()["iso3"]) if iso not in taken]
    rest = (1.0 - sum(shares.values())) / len(others)
    shares.update({c: rest for c in others})
    return shares


def _draw_customers(rng: np.random.Generator, n: int, span_days: float) -> dict[str, np.ndarray]:
    shares = country_shares()
    names = np.asarray(list(shares), dtype=object)
    country = names[rng.choice(len(names), size=n, p=np.asarray(list(shares.values())) / sum(shares.values()))]
    codes = pd.Series(country).map(gdp.country_to_iso3)
    per_capita = codes.map(gdp.gdp_table().set_index("iso3")["gdp_per_capita"]).to_numpy(dtype=float)
    # Where GDP is unknown the shop still sells: those customers behave like a typical one.
    log_gdp = np.nan_to_num(np.log(per_capita / REFERENCE_GDP), nan=0.0)
    age = np.clip(np.round(rng.normal(42, 13, n)), 18, 85)
    return {
        "customer_id": np.arange(100_001, 100_001 + n, dtype=np.int64),
        "signup": rng.random(n) * span_days,
        "z": rng.normal(0.0, 1.0, n),
        "country": country,
        "log_gdp": log_gdp,
        "age": age,
        "age_missing": rng.random(n) < 0.05,
        "gender": np.asarray(GENDERS, dtype=object)[rng.choice(len(GENDERS), size=n, p=GENDER_SHARES)],
    }


def _customers_frame(people: dict, t0: pd.Timestamp) -> pd.DataFrame:
    age = pd.array(people["age"].astype("int64"), dtype="Int64")
    age[people["age_missing"]] = pd.NA
    return pd.DataFrame({
        "customer_id": people["customer_id"],
        "signup_date": _stamps(t0, people["signup"]),
        "age": age,
        "gender": people["gender"],
        "country": people["country"],
    })


# --- web actions and campaigns ----------------------------------------------------------------


def _draw_web_actions(rng: np.random.Generator, people: dict, span_days: float) -> tuple[dict, np.ndarray]:
    z, n = people["z"], len(people["z"])
    # Early burst: most visits in the first days after signup.
    n_early = rng.poisson(np.exp(1.3 + 0.55 * z))
    who_early = np.repeat(np.arange(n), n_early)
    offset_early = np.minimum(rng.exponential(6.0, who_early.size), EARLY_DAYS - 1e-3)
    key_share = 1 / (1 + np.exp(-(-1.7 + 0.8 * z[who_early])))
    # Later visits, fewer, spread over the rest of the customer's time.
    alive = span_days - people["signup"]
    late_days = np.maximum(alive - EARLY_DAYS, 0.0)
    n_late = rng.poisson(late_days / 30.0 * np.exp(-0.2 + 0.5 * z))
    who_late = np.repeat(np.arange(n), n_late)
    offset_late = EARLY_DAYS + rng.random(who_late.size) * late_days[who_late]
    who = np.concatenate([who_early, who_late])
    offset = np.concatenate([offset_early, offset_late])
    is_key = rng.random(who.size) < np.concatenate([key_share, np.full(who_late.size, 0.12)])
    key_action = np.where(rng.random(who.size) < 0.7, ACTIONS.index("add_to_cart"), ACTIONS.index("checkout"))
    browse_action = rng.choice(len(ACTIONS) - len(KEY_ACTIONS), size=who.size, p=[0.40, 0.22, 0.14, 0.10, 0.14])
    action = np.where(is_key, key_action, browse_action)
    page = _pages(rng, action)
    when = people["signup"][who] + offset
    keep = when < span_days
    early_key = (np.arange(who.size) < who_early.size) & is_key & keep
    key_actions = np.bincount(who[early_key], minlength=n)
    events = {"who": who[keep], "when": when[keep], "page": page[keep],
              "action": np.asarray(ACTIONS, dtype=object)[action[keep]]}
    return _with_ids(events, people), key_actions


def _pages(rng: np.random.Generator, action: np.ndarray) -> np.ndarray:
    page = np.empty(action.size, dtype=object)
    for code, name in enumerate(ACTIONS):
        rows = np.flatnonzero(action == code)
        options = np.asarray(ACTION_PAGES[name], dtype=object)
        page[rows] = options[rng.integers(0, len(options), rows.size)]
    return page


def _draw_campaigns(rng: np.random.Generator, people: dict, span_days: float) -> tuple[dict, np.ndarray]:
    n = len(people["z"])
    alive = span_days - people["signup"]
    count = rng.poisson(alive / 30.0 * CAMPAIGNS_PER_30_DAYS)
    who = np.repeat(np.arange(n), count)
    offset = rng.random(who.size) * alive[who]
    channel = rng.choice(len(CHANNELS), size=who.size, p=CHANNEL_SHARES)
    early = offset < EARLY_DAYS
    early_counts = np.zeros((n, len(CHANNELS)))
    np.add.at(early_counts, (who[early], channel[early]), 1.0)
    when = people["signup"][who] + offset
    events = {"who": who, "when": when, "channel": channel}
    return _with_ids(events, people), early_counts


def _campaigns_frame(events: dict, t0: pd.Timestamp) -> pd.DataFrame:
    # One campaign per channel and week: its id names both.
    week = np.floor(events["when"] / 7).astype(int)
    code = events["channel"] * 10_000 + week
    labels = {c: f"{CHANNELS[c // 10_000]}-w{c % 10_000:03d}" for c in np.unique(code)}
    frame = pd.DataFrame({
        "customer_id": events["customer_id"],
        "campaign_id": pd.Series(code).map(labels).to_numpy(dtype=object),
        "channel": np.asarray(CHANNELS, dtype=object)[events["channel"]],
        "sent_at": _stamps(t0, events["when"]),
    })
    return frame.sort_values(["sent_at", "customer_id"], kind="stable").reset_index(drop=True)


# --- purchases --------------------------------------------------------------------------------


def _draw_purchases(rng: np.random.Generator, people: dict, key_actions: np.ndarray,
                    early_campaigns: np.ndarray, span_days: float) -> dict:
    z, log_gdp, n = people["z"], people["log_gdp"], len(people["z"])
    prime_age = ((people["age"] >= 30) & (people["age"] <= 55)).astype(float)
    basket = 3.6 + 0.35 * z + 0.40 * log_gdp + rng.normal(0, 0.3, n)  # log of a typical order (GBP)
    # Early orders: the first purchase usually comes in the first days.
    first_buyer = rng.random(n) < _sigmoid(0.5 + 0.6 * z + 0.3 * log_gdp)
    n_early = first_buyer * (1 + rng.poisson(0.25 * np.exp(0.4 * z)))
    who_early = np.repeat(np.arange(n), n_early)
    offset_early = np.minimum(rng.exponential(4.0, who_early.size), EARLY_DAYS - 1e-3)
    # Later orders: only retained customers, at a rate campaigns and engagement raise.
    campaign_effect = early_campaigns @ np.array([CHANNEL_EFFECTS[c] for c in CHANNELS])
    retained = rng.random(n) < _sigmoid(-1.0 + 0.8 * z + 0.5 * log_gdp + 0.9 * first_buyer
                                        + 0.15 * np.minimum(key_actions, 4) + 0.2 * prime_age + 2 * campaign_effect)
    rate = np.exp(-1.0 + 0.45 * z + 0.2 * log_gdp + campaign_effect)  # orders per 30 days
    active_days = rng.exponential(300.0, n)
    late_days = np.clip(np.minimum(active_days, span_days - people["signup"]) - EARLY_DAYS, 0.0, None)
    n_late = retained * rng.poisson(rate * late_days / 30.0)
    who_late = np.repeat(np.arange(n), n_late)
    offset_late = EARLY_DAYS + rng.random(who_late.size) * late_days[who_late]
    who = np.concatenate([who_early, who_late])
    when = people["signup"][who] + np.concatenate([offset_early, offset_late])
    log_amount = basket[who] + rng.normal(0, 0.7, who.size)
    amount = np.round(np.exp(log_amount), 2)
    n_items = 1 + rng.poisson(np.exp(0.4 + 0.5 * (log_amount - 3.6)))
    keep = when < span_days
    orders = {"who": who[keep], "when": when[keep], "amount": amount[keep], "n_items": n_items[keep],
              "refund": np.zeros(int(keep.sum()), dtype=bool)}
    return _with_ids(_add_refunds(rng, orders, span_days), people)


def _add_refunds(rng: np.random.Generator, orders: dict, span_days: float) -> dict:
    """Some orders come back (in part) within a month: a second row with negative amounts."""
    picked = np.flatnonzero(rng.random(orders["who"].size) < REFUND_SHARE)
    share = rng.uniform(0.2, 1.0, picked.size)
    when = orders["when"][picked] + rng.uniform(1.0, 30.0, picked.size)
    keep = when < span_days
    picked, share, when = picked[keep], share[keep], when[keep]
    return {
        "who": np.concatenate([orders["who"], orders["who"][picked]]),
        "when": np.concatenate([orders["when"], when]),
        "amount": np.concatenate([orders["amount"], -np.round(orders["amount"][picked] * share, 2)]),
        "n_items": np.concatenate([orders["n_items"], -np.maximum(1, np.round(orders["n_items"][picked] * share))]),
        "refund": np.concatenate([orders["refund"], np.ones(picked.size, dtype=bool)]),
    }


def _purchases_frame(events: dict, t0: pd.Timestamp) -> pd.DataFrame:
    frame = pd.DataFrame({
        "customer_id": events["customer_id"],
        "timestamp": _stamps(t0, events["when"]),
        "amount": events["amount"].astype("float64"),
        "n_items": events["n_items"].astype("int64"),
        "refund": events["refund"],
    }).sort_values(["timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    number = pd.Series(np.arange(1, len(frame) + 1)).astype(str).str.zfill(8)
    frame.insert(1, "order_id", np.where(frame.pop("refund"), "R", "O").astype(object) + number.to_numpy(dtype=object))
    return frame


# --- helpers ----------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _with_ids(events: dict, people: dict) -> dict:
    events["customer_id"] = people["customer_id"][events["who"]]
    return events


def _stamps(t0: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Day offsets from t0 as datetime64[ns], to the second."""
    seconds = np.floor(np.asarray(days, dtype=float) * 86_400).astype("int64")
    return (np.datetime64(t0.to_datetime64(), "s") + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")


def _events_frame(events: dict, t0: pd.Timestamp, time_column: str, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"customer_id": events["customer_id"], time_column: _stamps(t0, events["when"])})
    for column in columns:
        frame[column] = events[column]
    return frame.sort_values([time_column, "customer_id"], kind="stable").reset_index(drop=True)

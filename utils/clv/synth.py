"""Synthetic customer-lifetime-value sources: customers, web actions, campaigns, purchases and their lines.

A made-up online shop whose data behave like real ones where a CLV model cares, and which
does not grade its own homework (the features' window is not the generator's):

* each customer has two hidden parts of value. ``z`` (early engagement) shows in its first
  ``signal_days`` only: early web activity, key actions (add_to_cart, checkout), a first
  purchase and its size. ``z_late`` shows only AFTER ``signal_days``: retention, the rate
  and size of later orders. Later spend follows v = sqrt(1 - late_share) z +
  sqrt(late_share) z_late, so with ``late_share`` = 0.5 half of the value's variance is
  invisible to any early window. ``signal_days`` is the generator's own "first weeks", a
  parameter independent of whatever ``feature_window_days`` the features use;
* later spend also depends on the GDP per capita of the customer's country, on the key
  actions and the first purchase, on age, and on the campaigns received in the first weeks
  (channel effects: sms > email > push > social);
* what a customer buys hints at its late value, as in a real shop: the first third of the
  catalogue are "staples" (refills, stock items; priced like the rest) and a customer's share
  of staples rises with ``z_late``, so only a product-level signal learnt from earlier
  customers can see it; "trade" buyers (more likely with a high ``z_late``) buy in bulk,
  which basket features can see;
* most customers (about 55-65%) buy nothing after their first weeks; order sizes are
  log-normal, so spend is heavy-tailed; a few orders are returned in part later
  (negative lines and amounts);
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
SIGNAL_DAYS = 14.0           # default "first weeks" of a customer: where z shows (not the features' window)
LATE_SHARE = 0.5             # default share of the value's variance revealed only after SIGNAL_DAYS
N_PRODUCTS = 300             # catalogue size; the first third are staples
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


def generate_clv(n_customers: int, random_seed: int, start: str = "2021-01-01", end: str = "2022-12-31",
                 signal_days: float = SIGNAL_DAYS, late_share: float = LATE_SHARE,
                 n_products: int = N_PRODUCTS) -> dict[str, pd.DataFrame]:
    """The five CLV sources for ``n_customers`` customers signing up between start and end.

    Keys: customers, web_actions, campaigns, purchases, purchase_lines, in the contract's
    schemas (customer_id int64, timestamps datetime64[ns], age nullable Int64, amount float64
    net of refunds, n_items int64; the lines of an order add up to its amount). Events after
    ``end`` are cut off: the data end there.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if signal_days <= 0:
        raise ValueError(f"signal_days must be > 0, got {signal_days}")
    if not 0 <= late_share <= 1:
        raise ValueError(f"late_share must be in [0, 1], got {late_share}")
    if n_products < 3:
        raise ValueError(f"n_products must be >= 3 (a third are staples), got {n_products}")
    rng = np.random.default_rng(random_seed)
    t0 = pd.Timestamp(start)
    span_days = (pd.Timestamp(end) + pd.Timedelta(days=1) - t0) / pd.Timedelta(days=1)
    people = _draw_customers(rng, n_customers, span_days, late_share)
    web, key_actions = _draw_web_actions(rng, people, span_days, signal_days)
    campaigns, early_campaigns = _draw_campaigns(rng, people, span_days, signal_days)
    orders = _draw_orders(rng, people, key_actions, early_campaigns, span_days, signal_days)
    lines = _draw_lines(rng, people, orders, n_products)
    orders, lines = _add_returns(rng, orders, lines, span_days)
    purchases, purchase_lines = _purchase_frames(orders, lines, people, t0)
    return {
        "customers": _customers_frame(people, t0),
        "web_actions": _events_frame(web, t0, "timestamp", ["page", "action"]),
        "campaigns": _campaigns_frame(campaigns, t0),
        "purchases": purchases,
        "purchase_lines": purchase_lines,
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


def _draw_customers(rng: np.random.Generator, n: int, span_days: float, late_share: float) -> dict[str, np.ndarray]:
    shares = country_shares()
    names = np.asarray(list(shares), dtype=object)
    country = names[rng.choice(len(names), size=n, p=np.asarray(list(shares.values())) / sum(shares.values()))]
    codes = pd.Series(country).map(gdp.country_to_iso3)
    per_capita = codes.map(gdp.gdp_table().set_index("iso3")["gdp_per_capita"]).to_numpy(dtype=float)
    # Where GDP is unknown the shop still sells: those customers behave like a typical one.
    log_gdp = np.nan_to_num(np.log(per_capita / REFERENCE_GDP), nan=0.0)
    age = np.clip(np.round(rng.normal(42, 13, n)), 18, 85)
    z, z_late = rng.normal(0.0, 1.0, n), rng.normal(0.0, 1.0, n)
    return {
        "customer_id": np.arange(100_001, 100_001 + n, dtype=np.int64),
        "signup": rng.random(n) * span_days,
        "z": z,
        "z_late": z_late,
        "value": np.sqrt(1 - late_share) * z + np.sqrt(late_share) * z_late,
        # Resellers buy in bulk and keep coming back: a hint of late value basket features can see.
        "trade": rng.random(n) < _sigmoid(-1.5 + 1.2 * z_late),
        "staple_share": _sigmoid(-1.0 + 1.5 * z_late),
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


def _draw_web_actions(rng: np.random.Generator, people: dict, span_days: float,
                      signal_days: float) -> tuple[dict, np.ndarray]:
    z, n = people["z"], len(people["z"])
    # Early burst: most visits in the first days after signup.
    n_early = rng.poisson(np.exp(1.3 + 0.55 * z))
    who_early = np.repeat(np.arange(n), n_early)
    offset_early = np.minimum(rng.exponential(signal_days * 3 / 7, who_early.size), signal_days - 1e-3)
    key_share = 1 / (1 + np.exp(-(-1.7 + 0.8 * z[who_early])))
    # Later visits, fewer, spread over the rest of the customer's time; they follow the whole value.
    alive = span_days - people["signup"]
    late_days = np.maximum(alive - signal_days, 0.0)
    n_late = rng.poisson(late_days / 30.0 * np.exp(-0.2 + 0.5 * people["value"]))
    who_late = np.repeat(np.arange(n), n_late)
    offset_late = signal_days + rng.random(who_late.size) * late_days[who_late]
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


def _draw_campaigns(rng: np.random.Generator, people: dict, span_days: float,
                    signal_days: float) -> tuple[dict, np.ndarray]:
    n = len(people["z"])
    alive = span_days - people["signup"]
    count = rng.poisson(alive / 30.0 * CAMPAIGNS_PER_30_DAYS)
    who = np.repeat(np.arange(n), count)
    offset = rng.random(who.size) * alive[who]
    channel = rng.choice(len(CHANNELS), size=who.size, p=CHANNEL_SHARES)
    early = offset < signal_days
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


def _draw_orders(rng: np.random.Generator, people: dict, key_actions: np.ndarray, early_campaigns: np.ndarray,
                 span_days: float, signal_days: float) -> dict:
    """Orders (who, when, log size) before lines: early ones follow z, later ones the whole value."""
    z, value, log_gdp, n = people["z"], people["value"], people["log_gdp"], len(people["z"])
    trade = people["trade"].astype(float)
    prime_age = ((people["age"] >= 30) & (people["age"] <= 55)).astype(float)
    noise = rng.normal(0, 0.3, n)
    # Log of a typical order (GBP): the first baskets show z only, later ones the whole value.
    early_basket = 3.6 + 0.35 * z + 0.40 * log_gdp + noise
    late_basket = 3.6 + 0.35 * value + 0.40 * log_gdp + noise
    # Early orders: the first purchase usually comes in the first days.
    first_buyer = rng.random(n) < _sigmoid(0.5 + 0.6 * z + 0.3 * log_gdp)
    n_early = first_buyer * (1 + rng.poisson(0.25 * np.exp(0.4 * z)))
    who_early = np.repeat(np.arange(n), n_early)
    offset_early = np.minimum(rng.exponential(signal_days * 2 / 7, who_early.size), signal_days - 1e-3)
    # Later orders: only retained customers, at a rate campaigns and the whole value raise.
    campaign_effect = early_campaigns @ np.array([CHANNEL_EFFECTS[c] for c in CHANNELS])
    retained = rng.random(n) < _sigmoid(-1.2 + 0.8 * value + 0.5 * log_gdp + 0.9 * first_buyer + 0.5 * trade
                                        + 0.15 * np.minimum(key_actions, 4) + 0.2 * prime_age + 2 * campaign_effect)
    rate = np.exp(-1.0 + 0.45 * value + 0.2 * log_gdp + 0.3 * trade + campaign_effect)  # orders per 30 days
    active_days = rng.exponential(300.0, n)
    late_days = np.clip(np.minimum(active_days, span_days - people["signup"]) - signal_days, 0.0, None)
    n_late = retained * rng.poisson(rate * late_days / 30.0)
    who_late = np.repeat(np.arange(n), n_late)
    offset_late = signal_days + rng.random(who_late.size) * late_days[who_late]
    who = np.concatenate([who_early, who_late])
    when = people["signup"][who] + np.concatenate([offset_early, offset_late])
    level = np.concatenate([early_basket[who_early], late_basket[who_late]]) + rng.normal(0, 0.7, who.size)
    keep = when < span_days
    return {"who": who[keep], "when": when[keep], "level": level[keep]}


def _draw_lines(rng: np.random.Generator, people: dict, orders: dict, n_products: int) -> dict:
    """The product lines of each order; their amounts add up to about exp(level).

    A line's product is a staple with the customer's staple share; trade buyers buy many units
    per line. Unit prices are the catalogue's, scaled so that the order reaches its size.
    """
    who, level = orders["who"], orders["level"]
    trade = people["trade"][who]
    n_lines = 1 + rng.poisson(np.exp(0.9 + 0.35 * (level - 3.6)))
    order = np.repeat(np.arange(who.size), n_lines)
    staples = n_products // 3
    is_staple = rng.random(order.size) < people["staple_share"][who[order]]
    product = np.where(is_staple, rng.integers(0, staples, order.size), rng.integers(staples, n_products, order.size))
    # One catalogue per shop, whatever the seed of the customers.
    catalogue = np.exp(np.random.default_rng(12_345).normal(1.0, 0.7, n_products))
    quantity = np.where(trade[order], 1 + rng.poisson(11.0, order.size), 1 + rng.poisson(1.5, order.size))
    raw = quantity * catalogue[product]
    scale = np.exp(level) / np.bincount(order, raw, who.size)
    unit_price = np.maximum(np.round(catalogue[product] * scale[order], 2), 0.01)
    return {"order": order, "product": product, "quantity": quantity.astype("float64"), "unit_price": unit_price}


def _add_returns(rng: np.random.Generator, orders: dict, lines: dict, span_days: float) -> tuple[dict, dict]:
    """Some orders come back in part within a month: a second order of negative lines (a refund)."""
    picked = np.flatnonzero(rng.random(orders["who"].size) < REFUND_SHARE)
    when = orders["when"][picked] + rng.uniform(1.0, 30.0, picked.size)
    keep = when < span_days
    picked, when = picked[keep], when[keep]
    share = rng.uniform(0.2, 1.0, picked.size)
    refund_of = np.full(orders["who"].size, -1)
    refund_of[picked] = np.arange(picked.size)
    line_refund = refund_of[lines["order"]]
    candidate = line_refund >= 0
    # A line of no refunded order (-1) reads the 0.0 appended at the end: never returned.
    returned = candidate & (rng.random(line_refund.size) < np.r_[share, 0.0][line_refund])
    # Every refund returns at least its order's first line.
    first_line = np.r_[True, lines["order"][1:] != lines["order"][:-1]]
    returned |= candidate & first_line
    n_orders = orders["who"].size
    new_orders = {"who": np.concatenate([orders["who"], orders["who"][picked]]),
                  "when": np.concatenate([orders["when"], when]),
                  "refund": np.r_[np.zeros(n_orders, dtype=bool), np.ones(picked.size, dtype=bool)]}
    new_lines = {"order": np.concatenate([lines["order"], n_orders + line_refund[returned]]),
                 "product": np.concatenate([lines["product"], lines["product"][returned]]),
                 "quantity": np.concatenate([lines["quantity"], -lines["quantity"][returned]]),
                 "unit_price": np.concatenate([lines["unit_price"], lines["unit_price"][returned]])}
    return new_orders, new_lines


def _purchase_frames(orders: dict, lines: dict, people: dict, t0: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """purchases (one row per order, amount = its lines' sum) and purchase_lines, with shared order ids."""
    n_orders = orders["who"].size
    stamps = _stamps(t0, orders["when"])
    customer = people["customer_id"][orders["who"]]
    # Order ids follow time, as a shop numbers its invoices; "R" marks a refund.
    rank = np.empty(n_orders, dtype=np.int64)
    rank[np.lexsort((customer, stamps))] = np.arange(1, n_orders + 1)
    prefix = np.where(orders["refund"], "R", "O").astype(object)
    order_id = prefix + pd.Series(rank).astype(str).str.zfill(8).to_numpy(dtype=object)
    line_amount = np.round(lines["quantity"] * lines["unit_price"], 2)
    purchases = pd.DataFrame({
        "customer_id": customer,
        "order_id": order_id,
        "timestamp": stamps,
        "amount": np.round(np.bincount(lines["order"], line_amount, n_orders), 2),
        "n_items": np.bincount(lines["order"], lines["quantity"], n_orders).round().astype("int64"),
    }).sort_values(["timestamp", "customer_id", "order_id"], kind="stable").reset_index(drop=True)
    product = np.char.add("P", np.char.zfill(lines["product"].astype(str), 3)).astype(object)
    purchase_lines = pd.DataFrame({
        "customer_id": customer[lines["order"]],
        "order_id": order_id[lines["order"]],
        "timestamp": stamps[lines["order"]],
        "product": product,
        "quantity": lines["quantity"],
        "unit_price": lines["unit_price"],
    }).sort_values(["timestamp", "customer_id", "order_id"], kind="stable").reset_index(drop=True)
    return purchases, purchase_lines


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

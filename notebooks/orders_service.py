"""A small order service, the one notebooks/05-guard-the-fix.ipynb finds a leak in and guards.

Every checkout places an order and ships it. Open orders are cached by order id so that the status
page does not go to the database; the bug: a shipped order is never taken out of the cache, so every
checkout leaves its order behind. The fix (evict on shipping) ships behind a feature flag:
``FIXED``, read from the environment variable ``ORDERS_SERVICE_FIXED=1`` at import, or set on the
module.
"""
from __future__ import annotations

import itertools
import os

FIXED = os.environ.get("ORDERS_SERVICE_FIXED") == "1"

PRICES = {"book": 12.50, "pen": 1.20, "lamp": 30.00, "mug": 8.00}
_CACHE: dict[str, dict] = {}  # order id -> order, while the order is open (meant to be)
_ids = itertools.count(1)


def new_order(customer: str, items: tuple[str, ...]) -> dict:
    """Create an order and cache it for the status page."""
    order_id = f"ord-{next(_ids):07d}"
    lines = [{"item": item, "price": PRICES[item], "qty": 1} for item in items]
    order = {"id": order_id, "customer": customer, "lines": lines, "status": "open",
             "total": sum(line["price"] for line in lines), "note": f"order {order_id} for {customer}"}
    _CACHE[order_id] = order
    return order


def ship(order_id: str) -> None:
    """Mark an order shipped: from now on its status comes from the database."""
    _CACHE[order_id]["status"] = "shipped"
    if FIXED:
        del _CACHE[order_id]  # the fix: a shipped order leaves the cache


def order_status(order_id: str) -> str:
    """The status page: open orders from the cache, the others from the database."""
    order = _CACHE.get(order_id)
    return order["status"] if order is not None else "shipped (from the database)"


def checkout(customer: str = "alice", items: tuple[str, ...] = ("book", "pen", "mug")) -> str:
    """One request: place an order and ship it."""
    order = new_order(customer, items)
    ship(order["id"])
    return order["id"]

"""The planted leak of the attach tests: every cart opened is kept forever in a module-level dict."""
from __future__ import annotations

SESSIONS: dict[str, CartSession] = {}
FIXED = False  # the fixed server forgets the cart when the request is done
BLOB = 4096  # bytes each cart keeps


class CartSession:
    def __init__(self, number: int) -> None:
        self.number = number
        self.items = [f"sku-{number}-{i}" for i in range(4)]
        self.blob = bytearray(BLOB)  # the bulk of what is kept: BLOB bytes a request


def open_cart(number: int) -> CartSession:
    cart = CartSession(number)  # the planted site
    SESSIONS[f"cart-{number}"] = cart
    return cart


def close_cart(number: int) -> None:
    if FIXED:
        SESSIONS.pop(f"cart-{number}", None)

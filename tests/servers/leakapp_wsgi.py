"""The test service as a Flask (WSGI) app, for gunicorn's sync workers: ``leakapp_wsgi:app``.

What each endpoint does is :mod:`leakapp_core`; this module is only Flask's routing.
"""
from __future__ import annotations

import atexit

import leakapp_core as core
from flask import Flask, jsonify, request

app = Flask(__name__)
atexit.register(core.write_stats)


@app.get("/")
def index():
    return jsonify(core.ordinary("index"))


@app.get("/health")
def health():
    return jsonify(core.ordinary("health"))


@app.get("/items/<int:number>")
def item(number: int):
    return jsonify(core.ordinary(f"item-{number}", number))


@app.post("/internal/sync")
def internal_sync():
    return jsonify(core.internal_sync(request.path, dict(request.headers)))


@app.get("/catalog/<int:key>")
def catalog(key: int):
    return jsonify(core.catalog(key))


@app.post("/login/<int:user>")
def login(user: int):
    return jsonify(core.login(user))


@app.get("/whoami")
def whoami():
    return jsonify(core.whoami(float(request.args.get("hold", "0"))))

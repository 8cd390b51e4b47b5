"""The server integrations' hooks, each in a fresh process: what starts the monitor, with which options,
and that a failure never fails the worker. (The real servers: tests/test_servers_*.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest


def run(script: str, **env: str) -> dict:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_gunicorn_hooks_start_a_worker_monitor_named_after_the_server_and_stop_it(tmp_path):
    out = run("""
        import json, types
        from leakkit.frontends.servers.gunicorn import *
        from leakkit.recording.monitor import active
        server = types.SimpleNamespace(cfg=types.SimpleNamespace(proc_name="shop"))
        post_fork(server, None)
        [mon] = active()
        status = mon.status()
        worker_exit(server, None)
        print(json.dumps({"role": status["role"], "service": status["service"], "path": mon.path,
                          "interval": mon.interval, "limit": status["limit_bytes"], "left": len(active())}))
    """, LEAKKIT_MONITOR_DIR=str(tmp_path), LEAKKIT_MONITOR_INTERVAL="0.25", LEAKKIT_LIMIT="300MiB")
    assert out["role"] == "worker" and out["service"] == "shop" and out["interval"] == 0.25
    assert out["limit"] == 300 * 1024 * 1024 and out["left"] == 0
    assert os.path.dirname(out["path"]) == str(tmp_path) and os.path.basename(out["path"]).startswith("shop-worker-")


def test_a_worker_whose_monitor_came_with_the_fork_keeps_it_relabelled(tmp_path):
    out = run(f"""
        import json, os
        from leakkit.recording.monitor import monitor, active
        from leakkit.frontends.servers import worker
        mon = monitor({str(tmp_path / 'app-{pid}.csv')!r}, role="master")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            started = worker.start("worker", service="shop")
            os.write(write, json.dumps({{"same": started is active()[0], "count": len(active()), "role": started.role,
                                        "path": started.path}}).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.read(read, 4096).decode())
    """)
    assert out["same"] and out["count"] == 1 and out["role"] == "worker"
    assert out["path"].startswith(str(tmp_path / "app-"))


def test_the_environment_can_switch_it_off_and_a_failure_only_warns(tmp_path):
    out = run("""
        import json, warnings
        from leakkit.frontends.servers import worker
        print(json.dumps({"started": worker.start("worker") is not None}))
    """, LEAKKIT_MONITOR="0")
    assert out == {"started": False}
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = run("""
        import json, warnings
        from leakkit.frontends.servers import worker
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = worker.start("worker")
        print(json.dumps({"started": started is not None, "warned": [str(w.message) for w in caught]}))
    """, LEAKKIT_MONITOR_DIR=str(blocked / "sub"))
    assert not out["started"] and "serves on without it" in out["warned"][0]


def test_the_asgi_wrapper_starts_the_monitor_once_and_passes_every_message(tmp_path):
    out = run("""
        import asyncio, json
        from leakkit.frontends.servers.asgi import monitored
        from leakkit.recording.monitor import active
        seen = []
        async def app(scope, receive, send):
            seen.append(scope["type"])
            await send({"type": "echo", "body": await receive()})
        app.state = "kept"
        wrapped = monitored(app, service="api")
        sent = []
        async def main():
            async def receive():
                return "hello"
            async def send(message):
                sent.append(message)
            for kind in ("lifespan", "http", "http"):
                await wrapped({"type": kind}, receive, send)
        asyncio.run(main())
        print(json.dumps({"seen": seen, "sent": sent, "monitors": len(active()), "state": wrapped.state,
                          "service": active()[0].service}))
    """, LEAKKIT_MONITOR_DIR=str(tmp_path))
    assert out["seen"] == ["lifespan", "http", "http"] and out["sent"][0] == {"type": "echo", "body": "hello"}
    assert out["monitors"] == 1 and out["service"] == "api" and out["state"] == "kept"


def test_the_pool_initializer_runs_the_users_own_after_it(tmp_path):
    out = run(f"""
        import json
        from leakkit.frontends.servers import pool
        from leakkit.recording.monitor import active
        calls = []
        pool.initializer({str(tmp_path)!r}, "resize", calls.append, "mine")
        print(json.dumps({{"calls": calls, "service": active()[0].service, "role": active()[0].role}}))
    """)
    assert out == {"calls": ["mine"], "service": "resize", "role": "worker"}


def test_celery_install_starts_the_monitor_on_worker_process_init(tmp_path):
    pytest.importorskip("celery")
    out = run("""
        import json
        from celery import Celery
        from celery.signals import worker_process_init, worker_process_shutdown
        from leakkit.frontends.servers import celery as leakkit_celery
        from leakkit.recording.monitor import active
        app = Celery("billing")
        leakkit_celery.install()
        leakkit_celery.install()  # twice: still one monitor
        worker_process_init.send(sender=None)
        started = [(m.service, m.role) for m in active()]
        worker_process_shutdown.send(sender=None)
        print(json.dumps({"started": started, "left": len(active())}))
    """, LEAKKIT_MONITOR_DIR=str(tmp_path))
    assert out == {"started": [["billing", "worker"]], "left": 0}

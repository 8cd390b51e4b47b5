"""Server integrations: the in-process monitor started in every worker of a prefork server.

One line or one hook per server, no logic of their own (:mod:`.worker` starts the monitor with
options from the environment): :mod:`.gunicorn` (sync, gthread and uvicorn workers), :mod:`.asgi`
(uvicorn ``--workers`` and any ASGI server), :mod:`.celery` (prefork children), :mod:`.pool`
(``multiprocessing`` and ``concurrent.futures`` pools). docs/servers.md says what to type.
"""

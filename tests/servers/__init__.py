"""Real servers for end-to-end tests: the test service (leakapp_*), gunicorn start/stop and load (harness)."""

"""Workloads for the end-to-end tests of the server integrations (pools, Celery): a planted leak and its fix."""

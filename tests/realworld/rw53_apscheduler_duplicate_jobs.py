"""A notification service that, on every login, schedules a token refresh for the account every
30 minutes with APScheduler (``SCHEDULER.add_job(refresh_token, "interval", minutes=30,
args=[account])``) on a running ``BackgroundScheduler``, without a job id.

Real leak (APScheduler), a framework-held callable. Without ``id=...`` and
``replace_existing=True`` every login adds another job: the memory job store keeps each
``Job`` (its trigger, the callable, the argument tuple with the account's session: ~2 KB) in
``SCHEDULER._jobstores["default"]._jobs`` and ``._jobs_index`` forever (30-minute jobs never end),
and each would refresh the same account again. The fix:
``add_job(..., id=f"refresh-{account}", replace_existing=True)`` (the accounts are few).
"""
import itertools
import sys

import apscheduler.job
import apscheduler.jobstores.memory
import apscheduler.schedulers.base
from apscheduler.schedulers.background import BackgroundScheduler

SCHEDULER = BackgroundScheduler(timezone="UTC")
SCHEDULER.start()
_seq = itertools.count()


def refresh_token(account: dict) -> None:
    account["token"] = f"refreshed-{account['id']}"


def on_login(account_id: int) -> None:
    account = {"id": account_id, "scopes": [f"scope:{i}" for i in range(20)], "session": "s" * 600}
    SCHEDULER.add_job(refresh_token, "interval", minutes=30, args=[account])


def on_login_fixed(account_id: int) -> None:
    account = {"id": account_id, "scopes": [f"scope:{i}" for i in range(20)], "session": "s" * 600}
    SCHEDULER.add_job(refresh_token, "interval", minutes=30, args=[account], id=f"refresh-{account_id}",
                      replace_existing=True)


def workload():
    on_login(next(_seq) % 25)


def workload_fixed():
    on_login_fixed(next(_seq) % 25)


def release():
    SCHEDULER.remove_all_jobs()


TARGETS = [sys.modules[__name__], apscheduler.schedulers.base, apscheduler.job, apscheduler.jobstores.memory]
EXPECT = {"verdict": ["leak"], "culprit": ["on_login", "BaseScheduler.add_job", "Job.__init__", "Job._modify",
                                          "MemoryJobStore.add_job"],
          "root": ["rw53_apscheduler_duplicate_jobs.SCHEDULER._jobstores['default']._jobs"]}
# 600 calls: the fixed service levels off (~80 KB after its 25 jobs: interpreter free lists and the
# scheduler thread's wake-ups, filling over ~2000 calls); over 300 its late slope (33-53 B/call) sat on
# the 2%-of-the-leak line (49 B/call) and the check failed one run in two
TRUTH = {"kind": "leak", "calls": 600, "min_bytes_per_call": 1000,
         "root": "rw53_apscheduler_duplicate_jobs.SCHEDULER._jobstores['default']._jobs", "root_grows_by": 0.95,
         "release": "release"}

"""A chat-ops bot that dispatches every chat message to a ``click`` command group in-process
(``BOT.main(args, obj=STATE, standalone_mode=False)``); the ``deploy`` command's callback records
each deployment in the bot's state object for the ``/history`` command, which shows the last 10.

Real leak (click), framework-held callables. The growth comes from ``deploy``'s callback: the
module attribute ``deploy`` is a ``click.Command`` (the decorator replaced the function), the
function itself lives in ``deploy.callback`` (wrapped by ``click.pass_obj``) and only click calls
it, through ``Context.invoke``. Each call appends a record (~1.5 KB) to ``STATE.deployments``,
never trimmed. Other commands run beside it and keep nothing.
"""
import itertools
import sys

import click
import click.core


class BotState:
    def __init__(self) -> None:
        self.deployments: list[dict] = []
        self.pings = 0


STATE = BotState()
_seq = itertools.count()


@click.group()
def BOT() -> None:
    """Chat-ops commands."""


@BOT.command()
@click.argument("service")
@click.option("--version", required=True)
@click.option("--canary/--no-canary", default=False)
@click.pass_obj
def deploy(state: BotState, service: str, version: str, canary: bool) -> None:
    """Deploy SERVICE at VERSION."""
    state.deployments.append({"service": service, "version": version, "canary": canary,
                              "steps": [f"{service}: {step}" for step in ("drain", "pull", "migrate", "start", "probe")] * 4,
                              "log": f"deployed {service} {version} " * 12})


@BOT.command()
@click.pass_obj
def ping(state: BotState) -> None:
    """Answer pong."""
    state.pings += 1


def on_message(text: str) -> None:
    BOT.main(text.split(), obj=STATE, standalone_mode=False, prog_name="bot")


def workload():
    n = next(_seq)
    on_message(f"deploy billing --version 1.{n}.0{' --canary' if n % 3 == 0 else ''}")
    on_message("ping")


def release():
    STATE.deployments.clear()


TARGETS = [sys.modules[__name__], click, click.core]
EXPECT = {"verdict": ["leak"], "culprit": ["deploy"], "root": ["rw52_click_chatops_commands.STATE.deployments"]}
TRUTH = {"kind": "leak", "calls": 300, "min_bytes_per_call": 800, "root": "rw52_click_chatops_commands.STATE.deployments",
         "root_grows_by": 0.95, "release": "release"}

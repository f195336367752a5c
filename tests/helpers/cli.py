"""The account admin's commands (`hooks endpoints|filters|deliveries ...`) run as a person runs them, against
a running stack (tests.helpers.stack): the gateway's URL and the account from the environment.

    result = await hooks(stack, "endpoints", "list", account="acct")    # any exit status: a click Result
    text = await run(stack, "endpoints", "list")                        # exit status 0 asserted; its stdout

The services run in the test's process, and their log lines (structlog's default: printed) land in the same
capture as the command's output; `stdout_of` keeps the command's own.
"""

from __future__ import annotations

import asyncio
import re

from click.testing import CliRunner, Result

from cli.main import main as hooks_cli

LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[")


def invoke(stack, *args: str, account: str) -> Result:
    env = {"HOOKS_GATEWAY_URL": str(stack.http.base_url), "HOOKS_ACCOUNT": account}
    return CliRunner().invoke(hooks_cli, list(args), env=env, catch_exceptions=False)


def stdout_of(result: Result) -> str:
    return "".join(line for line in result.stdout.splitlines(keepends=True) if not LOG_LINE.match(line))


async def hooks(stack, *args: str, account: str) -> Result:
    """The command's result, whatever its exit status (in a thread: the stack serves on this loop)."""
    return await asyncio.to_thread(invoke, stack, *args, account=account)


async def run(stack, *args: str, account: str) -> str:
    """The command's stdout, once it has exited with 0."""
    result = await hooks(stack, *args, account=account)
    assert result.exit_code == 0, result.output
    return stdout_of(result)


async def refused(stack, *args: str, account: str) -> str:
    """What a command that must fail printed (stdout and stderr), once it has exited with a non-zero status
    and without a traceback."""
    result = await hooks(stack, *args, account=account)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    return result.output

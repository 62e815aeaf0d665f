"""A process that has imported supsup once and forks a fresh child for each command it is given.

A kill -9 trial then costs the command's own run instead of an interpreter start-up and torch's
import (1-2 s here), which is what makes a thousand trials per write path affordable. The child is
a real process running the command line's `main`, killed by a real SIGKILL; the zygote itself runs
no torch operation, so forking it is safe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO

_SERVER = r"""
import json, os, sys
# The heavy imports, once: the command line, the engine it imports lazily, and what torch.optim
# imports on its first use (torch._dynamo, 2 s here).
import torch._dynamo
import supsup_cli.cli.app, supsup_cli.api.autolearn, supsup_cli.api.learn, supsup_cli.benchmark.experiment
import supsup_cli.api.hopfield_store, supsup_cli.api.infer
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot
except ImportError:
    pass
from supsup_cli.cli import main

print("ready", os.getpid(), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if "wait" in request:
        _, status = os.waitpid(request["wait"], 0)
        print("status", os.waitstatus_to_exitcode(status), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir(request["cwd"])
        sys.argv = ["supsup", *request["argv"]]
        code = 1  # anything but SystemExit is a bug; the child must never go on reading requests
        try:
            main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        finally:
            os._exit(code)
    print("pid", pid, flush=True)
"""


class Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self._server = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=REPO, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._server.stdout.readline().startswith("ready")  # imported: runs are timed from here

    def start(self, *argv: object, cwd: object = REPO) -> int:
        """A child running `supsup ARGV`; its pid."""
        return int(self._ask({"argv": [str(a) for a in argv], "cwd": str(cwd)}, "pid"))

    def wait(self, pid: int) -> int:
        """The child's exit code (-9 when killed)."""
        return int(self._ask({"wait": pid}, "status"))

    def run(self, *argv: object) -> tuple[int, float]:
        """Exit code and wall seconds of an uninterrupted run."""
        started = time.monotonic()
        code = self.wait(self.start(*argv))
        return code, time.monotonic() - started

    def kill_after(self, seconds: float, *argv: object) -> int:
        """Start `supsup ARGV`, SIGKILL it after `seconds` (if it still runs), and give its exit code."""
        pid = self.start(*argv)
        time.sleep(seconds)
        kill(pid)
        return self.wait(pid)

    def close(self) -> None:
        self._server.stdin.close()
        self._server.wait(30)

    def _ask(self, request: dict, tag: str) -> str:
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        got, value = self._server.stdout.readline().split()
        assert got == tag, (got, value)
        return value


def kill(pid: int) -> None:
    """SIGKILL, unless the child has already ended (it stays a zombie until the zygote waits for it,
    so its pid is not reused before then)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

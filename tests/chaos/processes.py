"""The production process set, run as real processes for the chaos test and its benchmark.

Each process runs in a session (process group) of its own, so a SIGKILL reaches its pool
children too, and its output goes to a log file that is printed when something fails.
The commands come from the project's Procfile when it has them (the production set is
what is under test), else from the same command lines written here.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Used when the Procfile is missing or lacks a process type.
FALLBACK_COMMANDS = {
    "web": "gunicorn config.wsgi --bind 127.0.0.1:$PORT --workers ${WEB_CONCURRENCY:-2}",
    "runs": "celery -A config worker -Q runs,reconcile -n runs@%h --concurrency 2",
    "apply": "celery -A config worker -Q apply,reconcile -n apply@%h --concurrency 1",
    "beat": "celery -A config beat",
}


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """``{process type: command}`` from a Procfile, the fallbacks filling any gap."""
    commands = dict(FALLBACK_COMMANDS)
    if path.exists():
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line.strip())
            if match and match.group(1) in commands:
                commands[match.group(1)] = match.group(2)
    return commands


def exec_line(command: str) -> str:
    """``command`` as a shell line that execs the program itself, so the pid we hold is the
    program's; leading ``NAME=value`` assignments (a Procfile idiom) go through ``env``."""
    match = re.match(r"^((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)(.*)$", command.strip())
    assignments, program = match.group(1).strip(), match.group(2)
    return f"exec env {assignments} {program}" if assignments else f"exec {program}"


@dataclass
class Process:
    name: str
    command: str  # a shell command line, run with `exec` so the pid is the program's
    env: dict[str, str]
    log_path: Path
    cwd: Path
    popen: subprocess.Popen | None = None
    starts: int = 0
    # Every process group this one ever started, so none outlives the run.
    groups: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts}: {self.command}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            ["bash", "-c", exec_line(self.command)],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups.append(self.popen)
        log.close()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def children(self) -> list[int]:
        """Direct children (a Celery worker's pool processes)."""
        if not self.alive():
            return []
        found = subprocess.run(
            ["pgrep", "-P", str(self.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def kill_group(self, sig: int = signal.SIGKILL, wait: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=wait)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL what is left after a few seconds."""
        if self.popen is None:
            return
        self.kill_group(signal.SIGTERM, wait=8.0)
        for popen in self.groups:  # and pool children that outlived their parent
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_contains(self, needle: str) -> bool:
        return self.log_path.exists() and needle in self.log_path.read_text(errors="replace")


@dataclass
class ProcessSet:
    workdir: Path
    env: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)

    def add(self, name: str, command: str, extra_env: Mapping[str, str] | None = None) -> Process:
        process = Process(
            name,
            command,
            {**self.env, **(extra_env or {})},
            self.workdir / f"{name}.log",
            self.workdir,
        )
        self.processes[name] = process
        process.start()
        return process

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def stop_all(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    def logs(self, lines: int = 80) -> str:
        parts = []
        for process in self.processes.values():
            state = "running" if process.alive() else f"exited {process.popen.returncode}"
            parts.append(f"----- {process.name} ({state}, {process.log_path})\n")
            parts.append(process.log_tail(lines) + "\n")
        return "".join(parts)

    def dead(self) -> list[str]:
        return [name for name, process in self.processes.items() if not process.alive()]


def wait_for(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_up(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


def base_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment every process gets: this one's, minus what must not leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "PYTEST_ADDOPTS", "PORT"}
        and not key.startswith("PYTEST_")
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env.update(overrides)
    return env

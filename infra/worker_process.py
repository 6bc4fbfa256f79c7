"""Running `cityops worker` as a child process: the demo and the crash tests use this."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    web_port: int
    log_path: Path

    @classmethod
    def start(cls, env: dict[str, str], web_port: int, log_path: Path, timeout: float = 60) -> WorkerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, **env, "CITYOPS_WORKER_WEB_PORT": str(web_port)}
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], env=child_env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        worker = cls(process, web_port, log_path)
        try:
            worker.wait_ready(timeout)
        except BaseException:
            worker.kill()  # never leave a half-started worker behind
            raise
        return worker

    def wait_ready(self, timeout: float) -> None:
        """Until the worker has its partitions and has recovered its tables."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}:\n{self.log_tail()}")
            try:
                if self.stats()["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker on web port {self.web_port} not ready after {timeout}s; see {self.log_path}")

    def stats(self) -> dict:
        return self.get_json("/stats/")

    def get_json(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=10) as resp:
            return json.load(resp)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics/", timeout=10) as resp:
            return resp.read().decode()

    def wait_until(self, predicate, timeout: float, interval: float = 0.5) -> dict:
        """Poll /stats until predicate(stats) holds; returns the last stats."""
        deadline = time.monotonic() + timeout
        stats: dict = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # died: say so now, not when the timeout runs out
                raise RuntimeError(f"worker exited with code {self.process.returncode}; last stats {stats}; "
                                   f"log tail:\n{self.log_tail()}")
            try:
                stats = self.stats()
                if predicate(stats):
                    return stats
            except OSError:
                pass
            time.sleep(interval)
        raise TimeoutError(f"condition not reached in {timeout}s; last stats {stats}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, exactly like a crash."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

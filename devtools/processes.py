"""Running cityops processes as children: the demo, the bench and the tests use these.

`Service` is one `cityops worker` or `cityops api`; `Deployment` is what a city runs on one
machine: N workers and one api (which owns the store on the embedded default).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.kafka.broker import free_port


def poll_until(read: Callable[[], object], until: Callable[[object], bool], timeout: float = 60, interval: float = 0.3,
               what: str = "condition"):
    """`read()` again and again until `until` holds of what it returned (which is returned), or
    TimeoutError after `timeout` seconds, showing the last value read."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        last = read()
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s; last: {last}")
        time.sleep(interval)


@dataclass
class Service:
    role: str  # "worker" | "api"
    process: subprocess.Popen
    web_port: int
    log_path: Path
    api_key: str | None = None  # the api's: sent for its /metrics (CITYOPS_API_METRICS=key, the default)

    @classmethod
    def start(cls, role: str, env: dict[str, str], log_path: Path) -> Service:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        port = free_port()
        port_variable = "CITYOPS_WORKER_WEB_PORT" if role == "worker" else "CITYOPS_API_PORT"
        child_env = {**os.environ, **env, port_variable: str(port)}
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "cityops.cli", role], env=child_env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(role, process, port, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get_json(self, path: str, headers: dict[str, str] | None = None):
        request = urllib.request.Request(f"{self.url}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 503:  # not ready yet: the body says what
                return json.load(exc)
            raise

    def health(self) -> dict:
        return self.get_json("/health/" if self.role == "worker" else "/health")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.health()["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.role} on port {self.web_port} not ready after {timeout}s; see {self.log_path}:\n"
                           f"{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.role} exited with code {self.process.returncode}; see {self.log_path}:\n"
                               f"{self.log_tail()}")

    def metrics_text(self) -> str:
        request = urllib.request.Request(f"{self.url}/metrics{'/' if self.role == 'worker' else ''}",
                                         headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.read().decode()

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

    def log_tail(self, lines: int = 30, notable: int = 100) -> str:
        """The log's last `lines` lines, after the last `notable` WARNING and ERROR lines before them: a
        failure's cause is often a warning minutes earlier (a hole, a re-read), long out of the tail. The
        log holds every process started on it, a killed one's too."""
        try:
            every = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        earlier = [line for line in every[:-lines] if "WARNING" in line or "ERROR" in line][-notable:]
        return "\n".join([*earlier, *(["[…]"] if earlier else []), *every[-lines:]])


@dataclass
class Deployment:
    """N workers and one api on the same broker and store."""

    env: dict[str, str]
    log_dir: Path
    api_key: str | None = None  # a `read` key (infra/api/keys.py): what get_json sends
    workers: list[Service] = field(default_factory=list)
    api: Service | None = None
    last_lag: list[dict] = field(default_factory=list)  # what `wait_settled` read last: each worker's, then the sink's

    @classmethod
    def start(cls, env: dict[str, str], log_dir: Path, *, workers: int = 1, timeout: float = 90,
              api_key: str | None = None) -> Deployment:
        deployment = cls(env, log_dir, api_key)
        try:
            deployment.api = Service.start("api", env, log_dir / "api.log")
            deployment.api.api_key = api_key
            for _ in range(workers):
                deployment.add_worker(timeout=None)
            deployment.api.wait_ready(timeout)
            for worker in deployment.workers:
                worker.wait_ready(timeout)
        except BaseException:
            deployment.kill()  # never leave a half-started deployment behind
            raise
        return deployment

    def add_worker(self, timeout: float | None = 90) -> Service:
        n = len(self.workers)
        worker = Service.start("worker", self.env, self.log_dir / f"worker{n or ''}.log")
        self.workers.append(worker)
        if timeout is not None:
            worker.wait_ready(timeout)
        return worker

    def kill_worker(self, n: int) -> None:
        """SIGKILL one worker; the others take over its partitions (after the group's session timeout)."""
        self.workers.pop(n).kill()

    @property
    def worker(self) -> Service:
        return self.workers[0]

    @property
    def process(self) -> subprocess.Popen:
        return self.worker.process

    @property
    def web_port(self) -> int:
        """The api's port: where figures, tasks and the queue are read."""
        return self.api.web_port

    def get_json(self, path: str):
        return self.api.get_json(path, {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})

    def stats(self) -> dict:
        """The api's figures from ClickHouse, with what the live workers hold beside them."""
        stats = self.api.get_json("/stats/")
        healths = [w.health() for w in self.workers if w.process.poll() is None]
        stats["ready"] = all(h["ready"] for h in healths) and bool(healths)
        stats["dutylist_version"] = healths[0]["dutylist_version"] if healths else None
        stats["waiting_for_operator"] = sum(h["waiting_for_operator"] for h in healths)
        stats["held"] = {name: sum(h["held"][name] for h in healths) for name in (healths[0]["held"] if healths else {})}
        return stats

    def metrics_text(self) -> str:
        return self.worker.metrics_text()

    def wait_until(self, predicate: Callable[[dict], bool], timeout: float, interval: float = 0.3) -> dict:
        """Poll the figures until predicate(stats) holds; returns the last stats. A process that died
        meanwhile fails at once, with its log."""
        def read() -> dict | None:
            for service in [self.api, *self.workers]:
                service.check_alive()
            try:
                return self.stats()
            except OSError:
                return None

        try:
            return poll_until(read, lambda stats: stats is not None and predicate(stats), timeout, interval,
                              what="the deployment's figures")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_tail()}") from None

    def wait_settled(self, timeout: float) -> bool:
        """Wait until a broker check made after this call finds nothing left to read: no stage of any
        worker and not the sink has a record it has not committed (`infra/kafka/brokerwatch.py`). False
        when that moment did not come within `timeout` (a stage still busy)."""
        since = time.time()

        def settled(health: dict) -> bool:
            return health["checked_at"] > since and health["reachable"] and not any(health["lag"].values())

        def read() -> list[dict] | None:
            try:
                self.last_lag = [w.health()["broker"] for w in self.workers] + [self.api.health()["sink"]["broker"]]
            except OSError:  # a worker starting again in place (a stalled partition) answers nothing meanwhile
                return None
            return self.last_lag

        try:
            poll_until(read, lambda healths: healths is not None and all(settled(h) for h in healths), timeout,
                       what="no lag anywhere")
        except TimeoutError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL every process (the stream state and the sink must both survive it)."""
        for service in [*self.workers, *([self.api] if self.api else [])]:
            service.kill()

    def stop(self) -> None:
        for service in [*self.workers, *([self.api] if self.api else [])]:
            service.stop()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.log_tail(lines)}"
                         for s in [*self.workers, *([self.api] if self.api else [])])

"""Webhook mode as it is deployed, in real processes on loopback: `prokus serve --webhook`
instances behind HAProxy (deploy/haproxy.cfg, unchanged), Rasa NLU servers, one
PostgreSQL database, and the fake Bot API delivering updates to HAProxy the way Telegram
does (tests.fakes.telegram_api: per chat in order, retried until a 2xx).

Used by tests/test_load_balancer.py and scripts/bench_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROKUS = str(Path(sys.executable).with_name("prokus"))
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def free_port() -> int:
    """A free loopback port (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_binary() -> str | None:
    """HAProxy on PATH or in /usr/sbin (Debian's package), else None."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None)


def ensure_haproxy() -> str:
    """HAProxy's path, installing Debian's package when it is missing (needs root and apt)."""
    found = haproxy_binary()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("HAProxy is not installed: apt-get install haproxy")
    print("installing HAProxy (apt-get install haproxy) ...", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    found = haproxy_binary()
    if not found:
        raise RuntimeError("apt-get install haproxy did not give a haproxy binary")
    return found


def start_nlu_servers(count: int, logs: Path, model: Path | None = None) -> list:
    """`count` Rasa NLU servers, started in parallel, with `model` (default: the model of
    the current config and data, trained when missing)."""
    from bot.settings import Settings
    from nlu.model import train
    from nlu.server import NLUServer
    from nlu.server import free_port as nlu_port

    settings = Settings()
    if model is None:
        model = train(settings.project_root, settings.rasa_executable, settings.models_dir)
    servers = [NLUServer(settings.rasa_executable, model, nlu_port(), logs / f"nlu-{i}.log",
                         settings.project_root) for i in range(count)]
    errors: list[BaseException] = []

    def start(server) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return servers


def _wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}); see {log}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s; see {log}")


@dataclass
class Instance:
    """One `prokus serve --webhook --no-console` process."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """Instances behind HAProxy, sharing `database_url` and the NLU servers `nlu_urls`;
    the fake Bot API (`fake`, started by the caller) delivers to HAProxy."""

    database_url: str
    nlu_urls: list[str]
    fake: object
    logs: Path
    secret: str = "rahasia-webhook-klaster-0123456789abcdef"
    size: int = 2
    worker: bool = True
    env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    haproxy: subprocess.Popen | None = None
    lb_port: int = 0

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, DATABASE_URL=self.database_url, NLU_URL=",".join(self.nlu_urls),
                   TELEGRAM_BOT_TOKEN=self.fake.token, TELEGRAM_API_URL=self.fake.base_url,
                   TELEGRAM_WEBHOOK_SECRET=self.secret, LOG_LEVEL="WARNING")
        env.update(self.env)
        return env

    def start(self) -> Cluster:
        if len(self.instances) == 0:
            self.instances = [Instance(f"bot{i + 1}", free_port(), self.logs / f"bot{i + 1}.log")
                              for i in range(self.size)]
        for instance in self.instances:
            self.start_instance(instance)
        self.start_haproxy()
        self.fake.call("setWebhook", {"url": self.lb_url + WEBHOOK_PATH,
                                      "secret_token": self.secret, "max_connections": 40})
        return self

    def start_instance(self, instance: Instance) -> None:
        out = open(instance.log, "a")  # noqa: SIM115 (the child keeps it)
        command = [PROKUS, "serve", "--host", "127.0.0.1", "--port", str(instance.port),
                   "--webhook", "--no-console", "--worker" if self.worker else "--no-worker"]
        instance.process = subprocess.Popen(command, env=self._env(), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(instance.url + "/readyz", instance.process, instance.log)

    def start_haproxy(self) -> None:
        if len(self.instances) != 2:
            raise ValueError("deploy/haproxy.cfg names two bot instances")
        self.lb_port = self.lb_port or free_port()
        env = dict(os.environ, PROKUS_LB_BIND=f"127.0.0.1:{self.lb_port}",
                   PROKUS_BOT1=f"127.0.0.1:{self.instances[0].port}",
                   PROKUS_BOT2=f"127.0.0.1:{self.instances[1].port}")
        log = self.logs / "haproxy.log"
        out = open(log, "a")  # noqa: SIM115
        self.haproxy = subprocess.Popen([ensure_haproxy(), "-db", "-f", str(HAPROXY_CONFIG)],
                                        env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        _wait_http(self.lb_url + "/healthz", self.haproxy, log, timeout=30)

    def kill(self, index: int) -> None:
        """SIGKILL one instance (no shutdown of any kind: a crashed machine)."""
        instance = self.instances[index]
        if instance.alive:
            os.killpg(instance.process.pid, signal.SIGKILL)
            instance.process.wait()

    def stop(self) -> None:
        for instance in self.instances:
            if instance.alive:
                with _suppress():
                    os.killpg(instance.process.pid, signal.SIGINT)
        for instance in self.instances:
            if instance.process is not None:
                try:
                    instance.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with _suppress():
                        os.killpg(instance.process.pid, signal.SIGKILL)
                    instance.process.wait()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb) -> bool:
        return kind is not None and issubclass(kind, (ProcessLookupError, PermissionError))

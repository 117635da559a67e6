"""Start, wait for and stop a local Rasa NLU server (`rasa run --enable-api`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from nlu.model import rasa_env


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class NLUServer:
    """A Rasa NLU server in a child process, listening on 127.0.0.1 only."""

    def __init__(
        self, rasa_bin: Path, model: Path, port: int, log_file: Path, project_root: Path,
        auth_token: str | None = None,
    ) -> None:
        self.project_root = project_root
        # Started with `--auth-token`: every API call must then carry `?token=`.
        self.auth_token = auth_token
        self.rasa_bin = rasa_bin
        self.model = model
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0, on_wait=None) -> None:
        """Start the server and block until it has loaded the model."""
        if not self.rasa_bin.exists():
            raise FileNotFoundError(f"Rasa is not installed at {self.rasa_bin}; run `make setup`.")
        if not self.model.exists():
            raise FileNotFoundError(f"No NLU model at {self.model}; run `make train`.")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.rasa_bin), "run", "--enable-api",
            "-m", str(self.model),
            "-i", "127.0.0.1", "-p", str(self.port),
        ]
        if self.auth_token:
            cmd += ["--auth-token", self.auth_token]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=rasa_env(self.project_root),
                cwd=self.project_root,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The NLU server exited with code {self.process.returncode}; "
                    f"see {self.log_file}"
                )
            if self.ready():
                return
            if on_wait:
                on_wait()
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"The NLU server did not answer within {timeout:.0f} s; see {self.log_file}"
        )

    def ready(self) -> bool:
        try:
            params = {"token": self.auth_token} if self.auth_token else None
            response = httpx.get(f"{self.url}/status", params=params, timeout=1.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> None:
        """Stop the server and everything it started."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> NLUServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

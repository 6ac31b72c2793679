"""A real mosquitto broker for tests: own config in a temp dir, a free loopback port, restartable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
SITE_BROKER_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "mosquitto.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_broker_limits() -> tuple[str, ...]:
    """The queue and packet-size limits of the shipped site-broker config, so tests prove what is deployed."""
    conf = SITE_BROKER_CONF
    lines = tuple(
        line.strip()
        for line in conf.read_text(encoding="utf-8").splitlines()
        if line.startswith(("max_queued_", "max_packet_size "))
    )
    assert any(line.startswith("max_queued_messages ") for line in lines), f"{conf} sets no queue limit"
    assert any(line.startswith("max_packet_size ") for line in lines), f"{conf} sets no packet limit"
    return lines


class MosquittoBroker:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        listener: Sequence[str] = (),
        extra: Sequence[str] = (),
        allow_anonymous: bool = True,
        config_text: str | None = None,
    ) -> None:
        """The default is one anonymous plain listener on ``port``.

        ``listener`` lines follow the ``listener`` line (certificates, ``require_certificate`` ...),
        ``extra`` lines end the file (``password_file``, ``acl_file``, more listeners).
        ``config_text`` replaces the whole file; it must open a listener on ``port``.
        """
        # Fail, not skip: a missing broker on a test machine is a setup defect to be seen.
        binary = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which("mosquitto")
        if binary is None:
            raise RuntimeError("mosquitto is not installed (expected /usr/sbin/mosquitto)")
        self.binary = binary
        self._auto_port = port is None and config_text is None
        self.port = port or free_port()
        self.config = workdir / "mosquitto.conf"
        self._listener, self._extra, self._allow_anonymous = list(listener), list(extra), allow_anonymous
        self._config_text = config_text
        self._write_config()
        self.log = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        config_text = self._config_text
        custom = config_text is not None or bool(self._listener or self._extra) or not self._allow_anonymous
        if config_text is None:
            lines = [
                f"listener {self.port} 127.0.0.1",
                *self._listener,
                f"allow_anonymous {'true' if self._allow_anonymous else 'false'}",
                "persistence false",
                *self._extra,
            ]
            config_text = "\n".join(lines) + "\n"
        if custom and os.geteuid() == 0:
            # Started as root, mosquitto drops to its own user before reading certificates, password and
            # ACL files — which sit in pytest's 0700 root-owned tmp dirs. A test broker may stay root.
            config_text = "user root\n" + config_text
        self.config.write_text(config_text, encoding="utf-8")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait until *this* broker listens: with tests in parallel, a free port can be taken by
        another process between choosing it and binding it, and a connection alone would then reach the
        wrong listener."""
        for _ in range(5):
            if self._start_once(timeout_s):
                return
            if not self._auto_port:
                break
            self.port = free_port()
            self._write_config()
        raise RuntimeError(f"mosquitto could not listen on a free port: {self._log_tail()}")

    def _start_once(self, timeout_s: float) -> bool:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        listening = f"listen socket on port {self.port}."
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started_log = self.log.read_bytes()[offset:].decode(errors="replace")
            if self._proc.poll() is not None:
                if "Address already in use" in started_log:
                    return False
                raise RuntimeError(f"mosquitto exited: {started_log}")
            if listening in started_log:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                        return True
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start accepting connections: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def restart(self) -> None:
        """Crash (SIGKILL) and start again on the same port, as after a broker host failure."""
        self.kill()
        self.start()

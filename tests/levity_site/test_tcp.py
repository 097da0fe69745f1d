"""Levity's TCP endpoint (levity_site.tcp): what it sends, and that it sends without a writability watch."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from levity_site.tcp import levity_endpoint
from tests.conftest import PROJECT_DIR

PROBE = Path(__file__).with_name("tcp_probe.py")


@contextmanager
def running_probe(*args: str, pass_fds: tuple[int, ...] = ()) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(PROBE), *args], stdout=subprocess.PIPE, text=True, pass_fds=pass_fds
    )
    assert process.stdout is not None
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def probe():
    with running_probe() as port:
        yield port


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.received = bytearray()  # a 64 MiB answer arrives in many pieces

    def request(self, line: bytes) -> None:
        self.sock.sendall(line + b"\n")

    def read(self, size: int) -> bytes:
        while len(self.received) < size:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.received += chunk
        answer, self.received = self.received[:size], self.received[size:]
        return answer

    def line(self) -> bytes:
        while b"\n" not in self.received:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.received)
            self.received += chunk
        answer, _, self.received = self.received.partition(b"\n")
        return answer

    def watched(self) -> tuple[int, str]:
        self.request(b"watched")
        count, kind = self.line().split()
        return int(count), kind.decode()


def test_a_small_answer_is_sent_without_watching_the_socket_for_writability(probe):
    client = Client(probe)
    for n in range(20):
        client.request(b"echo %d" % n)
        assert client.line() == b"%d" % n
    # Fails when Twisted's doWrite() stops calling stopWriting() once all is sent.
    assert client.watched() == (0, "Connection")


def test_what_the_socket_does_not_take_at_once_is_sent_when_it_can(probe):
    client = Client(probe)
    size = 64 << 20  # far beyond a loopback socket's send buffer
    client.request(b"big %d" % size)
    assert client.read(size) == b"x" * size
    count, _ = client.watched()
    assert count >= 1
    client.request(b"echo after")
    assert client.line() == b"after"


def test_a_close_after_an_answer_sends_the_answer_first(probe):
    client = Client(probe)
    client.request(b"bye")
    assert client.line() == b"bye"
    assert client.sock.recv(100) == b""  # then the end of the stream


def test_an_inherited_listening_socket_serves_levitys_connections():
    # As each of --workers listens: on a socket its supervisor passes (daphne's --fd).
    listening = socket.create_server(("127.0.0.1", 0))
    with (
        listening,
        running_probe(f"levity-tcp:fileno={listening.fileno()}", pass_fds=(listening.fileno(),)) as port,
    ):
        assert port == listening.getsockname()[1]
        client = Client(port)
        client.request(b"echo inherited")
        assert client.line() == b"inherited"
        # Fails when Twisted's Port._fromListeningDescriptor() changes (docs/upstream.md).
        assert client.watched() == (0, "Connection")


def test_daphnes_tcp_endpoints_become_levitys():
    assert levity_endpoint("tcp:port=9000:interface=127.0.0.1") == "levity-tcp:port=9000:interface=127.0.0.1"
    assert levity_endpoint("fd:fileno=3") == "levity-tcp:fileno=3"
    assert levity_endpoint("unix:/run/levity.sock") == "unix:/run/levity.sock"
    assert levity_endpoint("fd:fileno=3:domain=UNIX") == "fd:fileno=3:domain=UNIX"


def test_levitys_server_listens_on_its_tcp_endpoint():
    # In a process of its own: daphne.server installs Twisted's reactor as it is imported.
    script = (
        "from levity_site.server import command_line; "
        "server = command_line().server_class(application=None, endpoints=['tcp:port=9000', 'unix:x.sock']); "
        "print(server.endpoints)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "['levity-tcp:port=9000', 'unix:x.sock']"

"""A WebSocket client over a bare TCP socket, for what a well-behaved client will not do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct


class RawClient:
    """A charge point's WebSocket, frame by frame, which closes only when and as told.

    ``websockets`` answers pings and Close frames and closes its socket at once; a
    charge point on a bad network may say nothing more, and a hostile one may
    announce frames it never sends.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, charge_point_id: str) -> RawClient:
        """Upgrade a new connection; the server's 101 is read, nothing else."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ocpp/{charge_point_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @classmethod
    def frame(cls, opcode: int, payload: bytes) -> bytes:
        """A whole masked client frame."""
        mask = os.urandom(4)
        return cls.frame_header(len(payload), opcode, mask) + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload)
        )

    @staticmethod
    def frame_header(length: int, opcode: int = 1, mask: bytes = b"\0\0\0\0") -> bytes:
        """A masked client frame's header announcing ``length`` bytes (a mask of zeros
        unless given)."""
        if length < 126:
            size = struct.pack("!B", 0x80 | length)
        elif length < 65536:
            size = struct.pack("!BH", 0x80 | 126, length)
        else:
            size = struct.pack("!BQ", 0x80 | 127, length)
        return struct.pack("!B", 0x80 | opcode) + size + mask

    def send_text(self, text: str) -> None:
        self.writer.write(self.frame(0x1, text.encode()))

    def send_close(self, code: int = 1000) -> None:
        self.writer.write(self.frame(0x8, code.to_bytes(2, "big")))

    async def read_frame(self, timeout: float = 10) -> tuple[int, bytes]:
        """The opcode and payload of the next frame the server sends."""

        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)

    async def read_close_code(self, timeout: float = 10) -> int:
        """The code of the Close frame the server sends (skipping other frames)."""
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    async def dropped_by_server(self, timeout: float = 10) -> None:
        """Wait until the server ends the TCP connection (closes or aborts it)."""
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(self.reader.read(), timeout) == b""

    def drop(self) -> None:
        """Close the TCP connection, with no closing handshake."""
        self.writer.transport.abort()

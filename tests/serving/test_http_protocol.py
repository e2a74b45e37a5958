"""`OneWritePerResponse`: a response's head and body leave in one write.

Runs on a real event loop over a real loopback connection; a recording wrapper
counts the writes that reach the socket's transport.
"""

import asyncio
import socket

from kerasdl.serving.http_protocol import OneWritePerResponse

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording:
    """The real transport, with each write it receives recorded."""

    def __init__(self, transport):
        self.transport = transport
        self.writes = []

    def write(self, data):
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


async def _connected():
    """(recording server transport, client socket) over loopback."""
    loop = asyncio.get_running_loop()
    accepted = loop.create_future()

    class Capture(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.set_result(transport)

    server = await loop.create_server(Capture, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    transport = await accepted
    server.close()
    return Recording(transport), client


def _receive(client, size):
    data = b""
    while len(data) < size:
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_head_and_body_in_the_same_step_are_one_write():
    async def scenario():
        recording, client = await _connected()
        wrapped = OneWritePerResponse(recording, asyncio.get_running_loop())
        wrapped.write(HEAD)
        assert recording.writes == []  # held
        wrapped.write(b"{}")
        assert recording.writes == [HEAD + b"{}"]
        received = await asyncio.to_thread(_receive, client, len(HEAD) + 2)
        assert received == HEAD + b"{}"
        wrapped.close()
        client.close()

    asyncio.run(scenario())


def test_a_lone_head_is_sent_at_the_end_of_the_step():
    async def scenario():
        recording, client = await _connected()
        wrapped = OneWritePerResponse(recording, asyncio.get_running_loop())
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0)
        assert recording.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        # The next response is held on its own again.
        wrapped.write(HEAD)
        wrapped.write(b"{}")
        assert recording.writes[1:] == [HEAD + b"{}"]
        wrapped.close()
        client.close()

    asyncio.run(scenario())


def test_close_sends_a_held_head_first():
    async def scenario():
        recording, client = await _connected()
        wrapped = OneWritePerResponse(recording, asyncio.get_running_loop())
        wrapped.write(HEAD)
        wrapped.close()
        assert recording.writes == [HEAD]
        received = await asyncio.to_thread(_receive, client, len(HEAD) + 1)
        assert received == HEAD  # then the end of the stream
        client.close()

    asyncio.run(scenario())


def test_other_transport_calls_reach_the_transport():
    async def scenario():
        recording, client = await _connected()
        wrapped = OneWritePerResponse(recording, asyncio.get_running_loop())
        assert wrapped.get_extra_info("peername") == client.getsockname()
        assert not wrapped.is_closing()
        wrapped.close()
        assert wrapped.is_closing()
        client.close()

    asyncio.run(scenario())

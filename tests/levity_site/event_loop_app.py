"""An ASGI application that tells a client what the server gave it.

Over HTTP, the class of the event loop it runs on; over a WebSocket, the
connection's scope (path, query string, subprotocols, headers) and how many requests
daphne's HTTP protocol has parsed so far as its first message,
then ``count`` answers of ``size`` bytes to each message if the query string asks for them.
"""

import asyncio
import json
from urllib.parse import parse_qs

from daphne import http_protocol

#: How many requests daphne's HTTP protocol has parsed in this server process: an
#: upgrade that Levity's server hands straight to autobahn is not one of them.
_parsed_by_daphne = 0
_process = http_protocol.WebRequest.process


def _counted_process(self):
    global _parsed_by_daphne
    _parsed_by_daphne += 1
    return _process(self)


http_protocol.WebRequest.process = _counted_process


async def application(scope, receive, send) -> None:
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def websocket(scope, receive, send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    seen = {
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "subprotocols": scope["subprotocols"],
        "headers": {name.decode(): value.decode() for name, value in scope["headers"]},
        "requests_parsed_by_daphne": _parsed_by_daphne,
    }
    await send({"type": "websocket.send", "text": json.dumps(seen)})
    query = parse_qs(seen["query_string"])
    size, count = int(query.get("size", ["0"])[0]), int(query.get("count", ["1"])[0])
    while (await receive())["type"] != "websocket.disconnect":
        for _ in range(count if size else 0):
            await send({"type": "websocket.send", "text": "x" * size})

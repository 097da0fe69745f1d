"""An ASGI application that answers with the class of the event loop it runs on."""

import asyncio


async def application(scope, receive, send) -> None:
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})

"""The API's JSON parser: orjson, with a bound on nesting.

DRF's JSONParser recurses in Python's ``json`` module: a body of a few thousand
nested brackets raises RecursionError, a 500. orjson parses without recursion up
to its own limit (1024 levels) and refuses more; this parser then refuses
anything nested deeper than LEVITY_API_JSON_MAX_DEPTH with a 400 parse error,
before any serializer, validator or logger walks it recursively.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        limit = settings.LEVITY_API_JSON_MAX_DEPTH
        if depth_exceeds(data, limit):
            raise ParseError(f"JSON parse error - nested deeper than {limit} levels")
        return data


def depth_exceeds(data: Any, limit: int) -> bool:
    """True when ``data`` nests lists/objects more than ``limit`` levels (iteratively)."""
    level = [data]
    depth = 0
    while level:
        containers = [item for item in level if isinstance(item, (dict, list))]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return False

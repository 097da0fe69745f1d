"""The HTTP API fuzzed from its own OpenAPI schema with schemathesis, against a live server.

Every operation of /api/v1/schema/ gets generated requests (valid and invalid
parameters and bodies), authenticated with one token. No answer may be a 500, and
no answer may carry another token's secret or its hash. ``LEVITY_FUZZ_EXAMPLES``
sets the examples per operation.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.reliability.conftest import record_figures

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = max(3, int(os.environ.get("LEVITY_FUZZ_EXAMPLES", "25")) // 5)


def test_api_fuzzed_from_its_openapi_schema_never_answers_500_nor_leaks_another_token(start_daphne):
    from chargepoints.models import ApiToken

    server = start_daphne()
    mine = ApiToken.issue("fuzzer")[1]
    other_row, other_secret = ApiToken.issue("someone else")
    secrets = [other_secret, *(v for k, v in vars(other_row).items() if "hash" in k and v)]
    schema_text = httpx.get(f"{server.http_url}/api/v1/schema/?format=json", timeout=30)
    assert schema_text.status_code == 200
    schema = schemathesis.openapi.from_dict(schema_text.json())
    headers = {"Authorization": f"Bearer {mine}"}
    statuses: dict[int, int] = {}
    failures: list[str] = []
    operations = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy())
        def example(case):
            response = case.call(base_url=f"{server.http_url}", headers=headers, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
            for secret in secrets:
                if secret in response.text:
                    failures.append(f"{where}: another token's secret in the answer")

        example()
    record_figures(
        "fuzz_api",
        inputs=f"{operations} API operations, up to {EXAMPLES} generated requests each (schemathesis)",
        operations=operations,
        requests=sum(statuses.values()),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        server_errors=sum(v for k, v in statuses.items() if k >= 500),
        leaks=sum("secret" in f for f in failures),
        seconds=round(time.monotonic() - started, 1),
        lost=0,
    )
    assert server.alive()
    assert not failures, failures[:10]

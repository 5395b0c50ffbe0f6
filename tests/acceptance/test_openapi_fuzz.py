"""Schemathesis against the OpenAPI document of a running ``perdure web``, on both
backends: whatever it sends, valid or not, nothing answers 5xx, every answer
matches the document (status, content type, schema), and the bearer token is
enforced. Deterministic (derandomized), about 20-40 s."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from perdure import Engine
from perdure.web._openapi import openapi_document

from . import web_workflows
from .conftest import WebServer, start_web

pytestmark = pytest.mark.slow
TOKEN = "fuzz-token"
# A workflow that exists, so POST /api/runs gets past the name and fuzzes the
# arguments all the way into the database (nothing executes the runs).
WORKFLOW = web_workflows.quick.name


def _document() -> dict[str, Any]:
    """The served document, with the start route's workflow narrowed to one that
    exists (an unknown name is a documented 404, which would hide the arguments)."""
    doc = copy.deepcopy(openapi_document())
    doc["components"]["schemas"]["StartRun"]["properties"]["workflow"]["enum"] = [WORKFLOW]
    return doc


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture(scope="module")
def fuzz_server(web_url: str) -> Iterator[WebServer]:
    Engine(web_url).shutdown()  # registers this module's workflows in the database
    server = start_web(web_url, "--max-body-bytes", "65536", token=TOKEN)
    yield server
    server.stop()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True, database=None)
def test_no_server_errors(case: Any, fuzz_server: WebServer) -> None:
    excluded = []
    if case.query and "cursor" in case.query:
        # cursors are opaque: one the server never handed out is a 400, as it should be
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(base_url=fuzz_server.base_url, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           excluded_checks=excluded)

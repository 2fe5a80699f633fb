"""The API's description stays true: OpenAPI at /api/openapi.json, the routes, and docs/api.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


def api_routes(site: Site) -> set[tuple[str, str]]:
    """(METHOD, path) of every JSON API route the app serves, ``<arg>`` as ``{arg}``."""
    routes = set()
    for rule in site.app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(m, path) for m in (rule.methods or set()) - IGNORED_METHODS}
    return routes


def test_openapi_is_public_and_names_exactly_the_routes_the_app_serves(site: Site) -> None:
    """Every /api route is described with its methods, and nothing else is."""
    response = site.app.test_client().get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = response.get_json()
    validate(spec)  # a valid OpenAPI 3.1 document (raises with the first problem)
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert described == api_routes(site) - {("GET", "/api/openapi.json")}


def test_docs_api_md_has_a_section_for_every_route(site: Site) -> None:
    """docs/api.md heads a section with "`METHOD /api/path`" for every route."""
    text = API_DOC.read_text(encoding="utf-8")
    headed = {
        (m, re.sub(r"<([^>]+)>", r"{\1}", p))
        for m, p in re.findall(r"^### `([A-Z]+) (/api/[^`]+)`", text, re.M)
    }
    assert headed == api_routes(site)


def test_the_generation_schema_has_the_fields_the_api_answers(site: Site) -> None:
    """The Generation schema's properties are exactly the keys of a real answer."""
    user = site.user()
    gen = site.plushify.submit(user.id, photo())
    client = site.app.test_client()
    answer = client.get(f"/api/generations/{gen.id}", headers=site.token(user)).get_json()
    spec = client.get("/api/openapi.json").get_json()
    assert set(spec["components"]["schemas"]["Generation"]["properties"]) == set(answer)
    credits = client.get("/api/credits", headers=site.token(user)).get_json()
    assert set(spec["components"]["schemas"]["Credits"]["properties"]) == set(credits)

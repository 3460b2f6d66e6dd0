"""The OpenAPI document is valid OpenAPI 3 (openapi-spec-validator) and complete, and the docs load without a CDN.

Beyond the validator: every path under /api/v1/, every operation with responses and the bearer scheme, and
every $ref resolving.
"""

import re

from openapi_spec_validator import validate


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_it_serves_a_valid_openapi_document(client, pm):
    """Behind the site login, like every page; each operation documents its answers and needs the bearer token."""
    assert client.get("/api/v1/openapi.json").status_code == 302  # to the login page
    client.force_login(pm)
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises with the first violation of the OpenAPI 3.x schema
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert document["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == {
        ("GET", "/api/v1/missions"),
        ("POST", "/api/v1/missions"),
        ("GET", "/api/v1/missions/{code}"),
        ("GET", "/api/v1/missions/{code}/costs"),
        *(
            ("POST", f"/api/v1/missions/{{code}}/{action}")
            for action in ("cancel", "pause", "resume", "retry", "clone")
        ),
        ("GET", "/api/v1/gates"),
        ("POST", "/api/v1/gates/{gate_id}/decision"),
        ("GET", "/api/v1/reports/kpi"),
    }
    ids = [operation["operationId"] for operation in operations.values()]
    assert len(set(ids)) == len(ids)
    for key, operation in operations.items():
        assert operation["responses"], key
        assert {"401", "422", "429"} <= set(operation["responses"]), key
        assert all(response["description"] for response in operation["responses"].values()), key
        assert operation["security"] == [{"TokenAuth": []}], key
        for parameter in re.findall(r"{(\w+)}", key[1]):
            assert any(p["name"] == parameter and p["in"] == "path" and p["required"] for p in operation["parameters"])
    for ref in set(_refs(document)):
        _resolve(document, ref)


def test_it_serves_the_interactive_docs_from_its_own_static_files(client, pm):
    """Swagger UI from the bundled files under /static/ninja/ (no CDN: offline installs work)."""
    client.force_login(pm)
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    body = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in body and "/static/ninja/swagger-ui.css" in body
    assert "cdn" not in body.lower() and "https://" not in body
    assert "/api/v1/openapi.json" in body
    from django.contrib.staticfiles import finders

    assert finders.find("ninja/swagger-ui-bundle.js") and finders.find("ninja/swagger-ui-init.js")


def test_it_sends_anonymous_visitors_of_the_docs_to_the_login_page(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 302 and response["Location"].startswith("/login/")

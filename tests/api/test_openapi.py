"""Every route and its errors are described in OpenAPI, in our error shape."""

from __future__ import annotations

from api.main import create_app
from config import Settings

SPEC = create_app(Settings(env="development")).openapi()


def test_every_route_documents_its_errors() -> None:
    for path, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
            if path in ("/healthz", "/v1/terms"):
                continue
            errors = {code for code in operation["responses"] if code[0] in "45"}
            assert "422" in errors, (method, path)
            for code in errors:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
                assert "codes:" in operation["responses"][code]["description"]


def test_journey_routes_list_their_conflicts() -> None:
    apply = SPEC["paths"]["/v1/journey/applications"]["post"]["responses"]
    for code in ("gateway_not_owned", "gateway_not_eligible", "gateway_already_applied"):
        assert code in apply["409"]["description"]
    assert "worker_unavailable" in apply["503"]["description"]
    assert "HTTPValidationError" not in SPEC["components"]["schemas"]


def test_passwords_are_marked_as_such() -> None:
    login = SPEC["components"]["schemas"]["LoginRequest"]["properties"]["password"]
    assert login["format"] == "password"

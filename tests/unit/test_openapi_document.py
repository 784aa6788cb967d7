"""The OpenAPI document, built without a server: every operation documents the error body for the statuses
it can answer, and FastAPI's own 422 body (which snapkeep never sends) is gone. test_openapi_conformance.py
checks the document against a running service."""

from __future__ import annotations

from snapkeep.api.app import create_app


def test_every_operation_documents_its_refusals_with_the_error_body() -> None:
    document = create_app(None).openapi()  # type: ignore[arg-type]  (the document needs no services)
    assert "HTTPValidationError" not in str(document)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            errors = {int(s): r for s, r in operation["responses"].items() if int(s) >= 400}
            assert {400, 413, 500, 503} <= set(errors), (method, path)
            if path != "/api/v1/health":
                assert {401, 403} <= set(errors) and operation["security"] == [{"HTTPBearer": []}], (method, path)
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorResponse"
                }

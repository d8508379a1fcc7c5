"""Validates recorded HTTP exchanges against openapi.yaml (OpenAPI 3.1), so the document and
the running system cannot drift apart.

usage: validate.py <openapi.yaml> <exchanges.jsonl>

Each line of the JSONL file is one exchange recorded by the end-to-end test:
{"method", "path", "status", "content_type", "body"}. Every one must match an operation of the
document and its response (status, content type, body schema). Exits 1 naming each mismatch.
"""

import json
import sys
from urllib.parse import urlsplit

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse


def main() -> int:
    spec_path, exchanges_path = sys.argv[1], sys.argv[2]
    api = OpenAPI.from_file_path(spec_path)
    failures, checked, operations = [], 0, set()
    with open(exchanges_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ex = json.loads(line)
            parts = urlsplit(ex["path"])
            request = MockRequest(
                "http://127.0.0.1:9000", ex["method"].lower(), parts.path,
                args=dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p),
            )
            data = b"" if ex["body"] is None else json.dumps(ex["body"]).encode()
            response = MockResponse(
                data, status_code=ex["status"],
                content_type=ex.get("content_type") or "application/json",
                headers=ex.get("headers") or {},
            )
            try:
                api.validate_response(request, response)
                operations.add((ex["method"], ex.get("route", parts.path)))
            except Exception as e:  # noqa: BLE001 - every mismatch is reported
                detail = getattr(e, "__cause__", None) or e
                failures.append(f"{ex['method']} {ex['path']} -> {ex['status']}: {type(e).__name__}: {detail}")
            checked += 1
    for f in failures:
        print("MISMATCH", f)
    print(f"openapi: {checked} responses checked against {spec_path}, {len(failures)} mismatches")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

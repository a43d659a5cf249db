"""The REST API under /api/v1/ (DESIGN.md): calls in, runs, workflows and the review queue
out, decisions on proposals, workflow tests. Authentication in authentication.py, scoping
in access.py; the OpenAPI schema is at /api/v1/schema/."""

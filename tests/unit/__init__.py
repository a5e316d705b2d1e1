"""Rule tests that need neither PostgreSQL nor the broker (`make test-unit`, seconds).

The package keeps their module names apart from those in tests/ (tests/unit/test_x.py and
tests/test_x.py may both exist). A test here that asks for `infra`, `db`, `spine` or
`booking` fails (tests/conftest.py)."""

"""Repository-wide pytest setup: every test directory (libs/*/tests, services/*/tests, tests/)
gets the shared fixtures `kafka_bootstrap`, `database_url` and `fresh_schema` from
`parlay_kit.testing` (see its docstring for which broker/Postgres it picks)."""

pytest_plugins = ["parlay_kit.testing"]

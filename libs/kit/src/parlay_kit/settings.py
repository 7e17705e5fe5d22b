"""Settings shared by every service, read from the environment with the PARLAY_ prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Producer/consumer settings are explicit: the local broker (Tansu) has no idempotent
    producer and no transactions, so both are off unless configured for real Kafka."""

    model_config = SettingsConfigDict(env_prefix="PARLAY_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    acks: str = "all"
    enable_idempotence: bool = False
    linger_ms: int = 1
    max_batch_size: int = 1_048_576
    request_timeout_ms: int = 30_000
    #: A 1 MiB webhook plus its envelope exceeds aiokafka's 1 MiB default (topics allow 2 MiB).
    max_request_size: int = 2_097_152
    # Consumer
    #: How long the broker may hold a fetch when there is nothing new (Kafka's default). Kafka
    #: answers as soon as a record arrives; Tansu (the local broker) holds a fetch for much of
    #: the wait even then (delivery p50 126 ms at 500 ms, 19 ms at 100 ms, measured). A short
    #: wait costs CPU: idle consumers poll, busy ones commit smaller batches. On the local stack
    #: 100 ms cuts e2e latency ~3x for that CPU (docs/benchmarks.md, "Fetch wait").
    fetch_max_wait_ms: int = 500
    #: Records per projector batch (one transaction). Only a backlog fills a batch (a catch-up,
    #: a burst, a new projection); there, each batch's fixed round trips (begin, load, last
    #: write, offsets, commit) are shared by more events: the payments projection went from
    #: 16,600–21,300 to 23,500 events/s at 5,000 (Tansu answers at most ~4,600 per fetch).
    max_poll_records: int = 5_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLAY_", extra="ignore")

    service_name: str = "parlay"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    #: A file holding the database password (a mounted Secret), used when the URL has none.
    database_password_file: str = ""
    db_pool_size: int = 10
    #: Postgres schema that holds this service's event store and read models.
    db_schema: str = ""
    #: Where tenants and API keys live (shared, read-only for services).
    tenancy_database_url: str = ""
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    #: TLS for the gRPC server; a client CA turns on mTLS (client certificates required).
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_client_ca_file: str = ""
    #: Dev mode accepts the printed dev API key; refused otherwise.
    dev_mode: bool = False
    otlp_endpoint: str = ""
    log_level: str = "INFO"
    #: What this process runs: any of grpc, http, relay, projectors (comma-separated) or "all".
    #: Kubernetes runs the request tier (grpc,http,relay) and the projector tier (projectors)
    #: as separate Deployments so each scales on its own signal.
    roles: str = "all"
    #: Which of the service's projectors this process runs (comma-separated names, "all" or
    #: "none"): one Deployment per projector, scaled by KEDA on that consumer group's lag.
    projectors: str = "all"
    #: Serve Prometheus /metrics on this port (0: off; the gateway serves it on its HTTP port).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    #: A poison event is retried this many times before it goes to the dead-letter topic.
    max_event_attempts: int = 3
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @property
    def store_schema(self) -> str:
        return self.db_schema or self.service_name

    def runs_projector(self, name: str) -> bool:
        wanted = {p.strip() for p in self.projectors.split(",") if p.strip()}
        return self.runs("projectors") and ("all" in wanted or name in wanted)

    def database_password(self) -> str | None:
        if not self.database_password_file:
            return None
        with open(self.database_password_file, encoding="utf-8") as f:
            return f.read().strip()

    def runs(self, role: str) -> bool:
        wanted = {r.strip() for r in self.roles.split(",") if r.strip()}
        return "all" in wanted or role in wanted

    @property
    def tenancy_dsn(self) -> str:
        return self.tenancy_database_url or self.database_url

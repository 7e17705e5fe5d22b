"""Profile service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from parlay_kit.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    service_name: str = "profile"
    grpc_port: int = 50053
    #: CustomerSeen is emitted when a message moves a customer's last-seen on a channel forward
    #: by at least this much (PARLAY_PROFILE_SEEN_RESOLUTION_SECONDS).
    profile_seen_resolution_seconds: float = 60.0

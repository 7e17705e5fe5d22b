"""Domain errors every service raises; the gRPC layer maps each to one status code."""

from __future__ import annotations


class ParlayError(Exception):
    """Base for errors with a well-defined gRPC status."""


class InvalidArgument(ParlayError):
    """A request field is missing or malformed. `field` names it for the caller."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(ParlayError):
    pass


class AlreadyExists(ParlayError):
    pass


class FailedPrecondition(ParlayError):
    pass


class NotYetKnown(ParlayError):
    """The request names something this service has not seen on the log yet (its view of
    other services lags by a moment): gRPC UNAVAILABLE, which clients retry with backoff."""


class ConcurrencyError(ParlayError):
    """The aggregate moved on since it was read (optimistic concurrency): gRPC ABORTED."""


class PermissionDenied(ParlayError):
    pass


class Unauthenticated(ParlayError):
    pass

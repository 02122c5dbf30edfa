"""The one exception type the client raises, carrying the gRPC status."""

import grpc


class CoremlzError(Exception):
    """A failed call: the gRPC status code and the server's (or client's) message.

    ``code`` is a ``grpc.StatusCode``: INVALID_ARGUMENT for a bad model or config,
    RESOURCE_EXHAUSTED for a limit or a busy server, DATA_LOSS when bytes did not
    arrive intact (size or SHA-256), UNAVAILABLE / DEADLINE_EXCEEDED for the
    network, ALREADY_EXISTS for an output that would be overwritten, and so on.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, server: str) -> "CoremlzError":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"server {server} unavailable: {details}"
        return cls(code, details or code.name)

"""Settings of the campaign document store; its URI is a secret, shown and stored only redacted."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_serializer, field_validator

from sbin_loop.config_base import PathComponent, Section


class StoreConfig(Section):
    """Campaign document store.

    The URI is a secret: it is shown and stored only redacted (``mongodb://user:***@host/db``), so neither the
    campaign document, the log, a report nor an error message carries its password. Connection settings are not part
    of what a campaign is: changing them (another host, a new password) does not block a resume.

    Attributes:
        uri: ``None`` for the embedded MontyStore inside the campaign directory, or a ``mongodb://`` URI.
        database: Database name.
        server_selection_timeout_ms: How long to wait for an unreachable MongoDB server before giving up.
    """

    uri: SecretStr | None = None
    database: PathComponent = "sbin"
    server_selection_timeout_ms: int = Field(default=5000, gt=0, le=600_000)

    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, uri: SecretStr | None) -> SecretStr | None:
        if uri is not None and not uri.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must be a mongodb:// or mongodb+srv:// URI, or omitted for the embedded store")
        return uri

    @field_serializer("uri", when_used="always")
    def _redacted(self, uri: SecretStr | None) -> str | None:
        return None if uri is None else self.redact(uri.get_secret_value())

    @property
    def secret_uri(self) -> str | None:
        """The URI with its credentials, for connecting only: never log, store or show it."""
        return None if self.uri is None else self.uri.get_secret_value()

    @property
    def redacted_uri(self) -> str | None:
        """The URI as it may be shown: password and query options replaced by ``***``."""
        return None if self.uri is None else self.redact(self.uri.get_secret_value())

    @staticmethod
    def redact(uri: str) -> str:
        """``uri`` with the password of its user info and its query options replaced by ``***``."""
        scheme, separator, rest = uri.partition("://")
        if not separator:
            return "***"
        address, slash, path = rest.partition("/")
        if "@" in address:
            user_info, _, hosts = address.rpartition("@")
            address = f"{user_info.split(':', 1)[0]}:***@{hosts}"
        if "?" in path:
            path = path.split("?", 1)[0] + "?***"
        elif "?" in address:
            address = address.split("?", 1)[0] + "?***"
        return f"{scheme}://{address}{slash}{path}"

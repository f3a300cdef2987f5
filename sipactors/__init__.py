"""sipactors: a formally specified, actor-model SIP system (RFC 3261 and extensions)."""

__version__ = "0.1.0"

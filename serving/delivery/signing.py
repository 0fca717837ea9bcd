"""The webhook signature: what a receiver checks to know a body is ours, unaltered and fresh.

Stripe's scheme: ``X-Propensity-Timestamp: <unix seconds>`` and ``X-Propensity-Signature:
v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the shared secret>``. Signing the timestamp
with the body lets a receiver refuse replays (a timestamp older than its tolerance); ``v1``
leaves room for another scheme beside it later. docs/webhooks.md shows the receiver's side
(its verifier is run by the tests against what this module signs).
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Propensity-Timestamp"
SIGNATURE_HEADER = "X-Propensity-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    stamp = str(int(timestamp))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}


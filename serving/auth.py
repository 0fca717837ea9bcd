"""API-key authentication for the FastAPI app: who may call what.

The app holds one :class:`Authenticator` in ``app.state.auth``; routes declare what they need
with ``Depends(require("read"))`` or ``Depends(require("admin"))``. Keys are accepted from
``Authorization: Bearer``, ``X-API-Key`` and the page's HttpOnly cookie - never from the query
string, which would put them in access logs and browser history. Nothing here logs a key or
echoes one back in an error body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from features.settings import Settings
from serving.keys import SCOPES, KeyEntry, KeyStore, KeyStoreError

log = logging.getLogger(__name__)

COOKIE_NAME = "propensity_key"
COOKIE_MAX_AGE = 30 * 24 * 3600  # the page asks once a month at most
CREATE_HINT = "create one with: propensity keys create NAME --scope read"

# Declared for the OpenAPI schema (Swagger's "Authorize", schemathesis); the checks are ours.
bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key: `Authorization: Bearer prop_...`"
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same API key in `X-API-Key`."
)


class AuthError(Exception):
    """A refused request: HTTP status, a short error code and a message safe to show."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def to_http(self) -> HTTPException:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return HTTPException(
            self.status, detail={"error": self.error, "message": self.message}, headers=headers
        )


class Authenticator:
    """Decides whether a key may use a scope; with ``enabled=False`` everything is allowed.

    The key store re-reads its file when it changes, so ``propensity keys revoke`` takes effect
    on the next request without restarting the API.
    """

    def __init__(self, store: KeyStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(KeyStore(settings.keys_path), enabled=settings.auth_enabled)

    def describe(self) -> str:
        """One line for the start-up log. Raises KeyStoreError if the keys file is unusable,
        so a broken file stops the app at start-up rather than at the first request."""
        if not self.enabled:
            return ("authentication is OFF (auth_enabled=false): every request is allowed; "
                    "use this for local development only")
        count = len(self.store.list())
        if count == 0:
            return f"authentication is on; no API keys in {self.store.path} yet: {CREATE_HINT}"
        return f"authentication is on: {count} API key(s) in {self.store.path}"

    def check(self, key: str | None, scope: str) -> KeyEntry | None:
        """The entry of ``key`` if it may use ``scope``; None when auth is off.

        Raises AuthError (401 missing/unknown key, 403 wrong scope, 503 unusable keys file).
        """
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r}: choose one of {SCOPES}")
        if not self.enabled:
            return None
        try:
            entry = self.store.lookup(key) if key else None
            no_keys = entry is None and not self.store.list()
        except KeyStoreError as exc:
            log.error("refusing requests: %s", exc)
            raise AuthError(503, "auth_unavailable",
                            "the API keys file cannot be read; see the server log") from None
        if entry is None:
            reason = "unknown key" if key else "no key"
            log.debug("refused a request for scope %s: %s", scope, reason)
            raise AuthError(401, "unauthorized", _unauthorized_message(key, no_keys))
        if not entry.allows(scope):
            log.debug("refused key %s (scope %s) for scope %s", entry.name, entry.scope, scope)
            raise AuthError(
                403, "forbidden", f"this key has scope {entry.scope}; {scope} is required"
            )
        log.debug("accepted key %s (scope %s) for scope %s", entry.name, entry.scope, scope)
        return entry


def _unauthorized_message(key: str | None, no_keys: bool) -> str:
    if no_keys:
        return f"no API keys exist on this server yet; {CREATE_HINT}"
    if not key:
        return "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    return "API key not recognised (unknown or revoked)"


def credentials(
    request: Request, bearer: HTTPAuthorizationCredentials | None, header_key: str | None
) -> str | None:
    """The key a request carries: Bearer header, then X-API-Key, then the page's cookie."""
    if bearer is not None and bearer.credentials:
        return bearer.credentials.strip()
    if header_key:
        return header_key.strip()
    return request.cookies.get(COOKIE_NAME) or None


def require(scope: str) -> Callable[..., Awaitable[KeyEntry | None]]:
    """A dependency admitting only keys with ``scope``: ``Depends(require("read"))``.

    It returns the caller's KeyEntry (None when auth is off) and reads the Authenticator from
    ``request.app.state.auth``.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: choose one of {SCOPES}")

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        header_key: Annotated[str | None, Depends(api_key_scheme)],
    ) -> KeyEntry | None:
        auth: Authenticator = request.app.state.auth
        try:
            return auth.check(credentials(request, bearer, header_key), scope)
        except AuthError as exc:
            raise exc.to_http() from None

    dependency.__name__ = f"require_{scope}"
    return dependency


def login_cookie(
    response: Response, key: str, request: Request, max_age: int = COOKIE_MAX_AGE
) -> None:
    """Keep a key the page's user typed in an HttpOnly cookie (check it first with
    ``Authenticator.check(key, "read")``). HttpOnly keeps it from scripts; SameSite=Strict keeps
    other sites from riding on it (no CSRF); Secure whenever the page was served over https."""
    response.set_cookie(
        COOKIE_NAME, key, max_age=max_age, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )


def logout_cookie(response: Response) -> None:
    """Forget the page's key."""
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")

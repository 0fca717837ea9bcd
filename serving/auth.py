"""API-key authentication for the FastAPI app: who may call what.

The app holds one :class:`Authenticator` in ``app.state.auth``; routes declare what they need
with ``Depends(require("read"))`` or ``Depends(require("admin"))``. Keys are accepted from
``Authorization: Bearer``, ``X-API-Key`` and the page's HttpOnly cookie - never from the query
string, which would put them in access logs and browser history. Nothing here logs a key or
echoes one back in an error body.

The cookie is the page's sign-in, and it only reads: it is accepted for GET (and HEAD) requests
needing scope ``read``, so an admin key typed into the sign-in still cannot reload through the
cookie, and no state-changing request rides on it (another port or host of the same site can
make a browser send a SameSite=Strict cookie). The sign-in form itself is refused when posted
from another origin (the Origin, else Referer, header must be this server's own origin), and
the cookie is Secure whenever the page is served over https (behind a proxy: its
X-Forwarded-Proto, only with ``trust_forwarded_proto``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.keys import SCOPES, KeyEntry, KeyStore, KeyStoreError
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

COOKIE_NAME = "propensity_key"
COOKIE_MAX_AGE = 30 * 24 * 3600  # the page asks once a month at most
CREATE_HINT = "create one with: propensity keys create NAME --scope read"
MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
UNKNOWN_KEY = "API key not recognised (unknown or revoked)"
COOKIE_REFUSED = ("the page's sign-in cookie only reads (GET); send the key in "
                  "'Authorization: Bearer <key>' or 'X-API-Key: <key>' for this request")
COOKIE_METHODS = frozenset({"GET", "HEAD"})
_CHECKED = "propensity.auth"  # request scope key: the scopes already checked, and their entry
Source = Literal["header", "cookie"]

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

    def __init__(self, store: KeyStore, enabled: bool = True,
                 trust_forwarded_proto: bool = False) -> None:
        self.store = store
        self.enabled = enabled
        self.trust_forwarded_proto = trust_forwarded_proto

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> Authenticator:
        return cls(KeyStore(settings.keys_path), enabled=settings.auth_enabled,
                   trust_forwarded_proto=settings.trust_forwarded_proto)

    def check_key_store(self) -> str:
        """Raise KeyStoreError if the keys file is unusable, so that a broken file stops the
        app at start-up rather than at the first request; else the start-up log's line."""
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
        return MISSING_KEY
    return UNKNOWN_KEY


def credentials(request: Request) -> tuple[str | None, Source | None]:
    """The key a request carries and where: Bearer header, then X-API-Key, then the page's
    cookie. Read from the headers directly (as HTTPBearer and APIKeyHeader do), so the key
    can be checked before the body is read."""
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return bearer.strip(), "header"
    header_key = request.headers.get("x-api-key", "").strip()
    if header_key:
        return header_key, "header"
    cookie = request.cookies.get(COOKIE_NAME)
    return (cookie, "cookie") if cookie else (None, None)


def authorise(request: Request, scope: str) -> KeyEntry | None:
    """The caller's entry if this request may use ``scope`` (None when auth is off). The
    cookie counts only for reading (GET/HEAD, scope read). Raises HTTPException; remembers
    the answer on the request, so checking again (before and after the body) is free."""
    checked = request.scope.setdefault(_CHECKED, {})
    if scope in checked:
        return checked[scope]
    auth: Authenticator = request.app.state.auth
    key, source = credentials(request)
    try:
        if auth.enabled and source == "cookie" and (
                scope != "read" or request.method not in COOKIE_METHODS):
            log.debug("refused the sign-in cookie for %s (scope %s)", request.method, scope)
            raise AuthError(403, "cookie_not_accepted", COOKIE_REFUSED)
        checked[scope] = auth.check(key, scope)
    except AuthError as exc:
        raise exc.to_http() from None
    return checked[scope]


def require(scope: str) -> Callable[..., Awaitable[KeyEntry | None]]:
    """A dependency admitting only keys with ``scope``: ``Depends(require("read"))``.

    It returns the caller's KeyEntry (None when auth is off) and reads the Authenticator from
    ``request.app.state.auth``. Routes with a body check it before reading the body too
    (``deps.FastJSONRoute``, which finds the scope in ``required_scope``).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: choose one of {SCOPES}")

    async def dependency(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        _header_key: Annotated[str | None, Depends(api_key_scheme)],
    ) -> KeyEntry | None:
        return authorise(request, scope)

    dependency.__name__ = f"require_{scope}"
    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def public_scheme(request: Request) -> str:
    """http or https as the browser sees this server: the proxy's X-Forwarded-Proto when the
    settings trust it (``trust_forwarded_proto``), else the scheme the request came in on."""
    forwarded = request.headers.get("x-forwarded-proto")
    if forwarded and request.app.state.auth.trust_forwarded_proto:
        return forwarded.split(",")[0].strip().lower()
    return request.url.scheme


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return (parts.scheme, parts.hostname, port) if parts.scheme and parts.hostname else None


def foreign_origin(request: Request) -> str | None:
    """The other origin a form was posted from, or None when it came from this server's own
    origin (as Django's CSRF check: Origin, else Referer, against scheme://Host). A request
    with neither header is not a browser's cross-site post (browsers send Origin on every
    cross-origin POST) and passes; Origin "null" (sandboxed or privacy-stripped) does not."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None:
        return None
    own = _origin(f"{public_scheme(request)}://{request.headers.get('host', '')}")
    theirs = _origin(sent)
    return None if theirs is not None and theirs == own else sent[:100]


def login_cookie(
    response: Response, key: str, request: Request, max_age: int = COOKIE_MAX_AGE
) -> None:
    """Keep a key the page's user typed in an HttpOnly cookie (check it first with
    ``Authenticator.check(key, "read")``). HttpOnly keeps it from scripts; SameSite=Strict keeps
    other sites from riding on it; it only reads (``authorise``), whatever the key's scope;
    Secure whenever the page was served over https (``public_scheme``)."""
    response.set_cookie(
        COOKIE_NAME, key, max_age=max_age, path="/",
        httponly=True, samesite="strict", secure=public_scheme(request) == "https",
    )


def logout_cookie(response: Response) -> None:
    """Forget the page's key."""
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")

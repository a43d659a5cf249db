"""The ``requests`` session simple-salesforce sends everything through.

simple-salesforce rebuilds every URL as ``https://{host:port}/…`` from the instance URL,
whatever its scheme (reference B5 and C2), and passes no timeout. The session mounts one
transport adapter on that host which applies the client's timeout to every request and,
for an ``http://`` instance (the local sandbox), sends the https:// URLs over plain HTTP.
The same session serves ``Salesforce`` and every ``SFType``, so this covers every call.
"""

from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter


class Transport(HTTPAdapter):
    def __init__(self, *, timeout: float, plain_http: bool) -> None:
        # No urllib3 retries: a retry decision belongs to the caller (RateLimited, Transient).
        super().__init__(max_retries=0)
        self.timeout = timeout
        self.plain_http = plain_http

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.plain_http and request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url.removeprefix("https://")
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def session_for(
    base_url: str, *, timeout: float, session: requests.Session | None = None
) -> requests.Session:
    """A session for the instance at ``base_url`` (``https://…`` or a sandbox's ``http://…``)."""
    parsed = urlparse(base_url)
    if not parsed.hostname:
        raise ValueError(f"not an instance URL: {base_url!r}")
    host = parsed.hostname + (f":{parsed.port}" if parsed.port not in (None, 443) else "")
    session = session or requests.Session()
    plain_http = parsed.scheme == "http"
    if plain_http:
        # A loopback sandbox: proxy settings from the environment must not capture it.
        session.trust_env = False
    session.mount(f"https://{host}/", Transport(timeout=timeout, plain_http=plain_http))
    return session

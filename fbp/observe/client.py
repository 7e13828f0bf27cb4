"""Reading a running network's endpoint (for `fbp top` and `fbp ui`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from fbp.errors import FBPError
from fbp.observe.runs import find_run

__all__ = ["Endpoint", "endpoint_for"]


class Endpoint:
    """A run's observation endpoint: base URL and token.

    Args:
        base_url: e.g. "http://127.0.0.1:40123".
        token: the run's token.
    """

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    @property
    def dashboard(self) -> str:
        """The dashboard's URL with the token."""
        return f"{self.base_url}/?token={self.token}"

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        """GET a path of the endpoint.

        Raises:
            FBPError: the run is not reachable or refused the token.
        """
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise FBPError(f"{self.base_url} refused the token (401): check --token") from exc
            raise FBPError(f"{self.base_url}{path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise FBPError(f"cannot reach {self.base_url} ({exc}); has the run ended?") from exc

    def snapshot(self) -> dict:
        """The network's current snapshot (see Supervisor.snapshot).

        Raises:
            FBPError: the run is not reachable or refused the token.
        """
        return json.loads(self.get("/api/snapshot"))


def endpoint_for(run: str | None = None, url: str | None = None, token: str | None = None):
    """The endpoint a user means: `--url`/`--token`, or a local run by pid or graph name.

    Raises:
        FBPError: no such run, several runs and none chosen, or a URL without a token.
    """
    if url:
        if not token:
            raise FBPError("--url needs --token (the token the run's dashboard URL ends with)")
        if "?token=" in url:
            url = url.split("?token=")[0]
        return Endpoint(url, token)
    try:
        entry = find_run(run)
    except LookupError as exc:
        raise FBPError(str(exc)) from exc
    return Endpoint(entry["url"], entry["token"])

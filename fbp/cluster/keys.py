"""CurveZMQ keys for multi-host runs: one key folder, copied to every host.

`fbp keys generate DIR` writes a key pair in ZeroMQ's certificate format: `DIR/fbp.key`
(public) and `DIR/fbp.key_secret` (secret, mode 0600, folder 0700). Every host of a run
(agents, the coordinator, and the bridge processes they start) is given the same folder
with `--keys DIR`. Then every control and data socket is encrypted, and a server (an agent,
a link's receiving end) accepts only a peer whose public key is one of `DIR/*.key`: a peer
with another key is refused at the handshake, and both sides report it.

More peers can be trusted by adding their public `.key` files to the folder; the server
key every client expects is the folder's own pair.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from fbp.errors import FBPError

__all__ = ["Keys", "generate", "load_keys", "watch_handshakes"]

NAME = "fbp"


@dataclass(frozen=True)
class Keys:
    """A loaded key folder: this side's pair; the folder trusts the public keys in it."""

    folder: str
    public: bytes
    secret: bytes

    def server(self) -> dict:
        """Socket options of a CURVE server (binds, authenticates clients)."""
        return {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_PUBLICKEY: self.public,
            zmq.CURVE_SECRETKEY: self.secret,
        }

    def client(self) -> dict:
        """Socket options of a CURVE client: its own pair and the server's public key."""
        return {
            zmq.CURVE_PUBLICKEY: self.public,
            zmq.CURVE_SECRETKEY: self.secret,
            zmq.CURVE_SERVERKEY: self.public,
        }

    def authenticate(self, context: zmq.Context) -> ThreadAuthenticator:
        """Start ZAP in `context`: servers then accept only clients with a key of the folder.

        Keep the returned authenticator and `stop()` it before the context ends.
        """
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=self.folder)
        return authenticator


def generate(folder: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new key pair into `folder` (created, mode 0700); return (public, secret).

    Raises:
        FBPError: the folder already holds a pair and `force` is false.
    """
    folder = Path(folder)
    public, secret = folder / f"{NAME}.key", folder / f"{NAME}.key_secret"
    if not force and (public.exists() or secret.exists()):
        raise FBPError(
            f"{folder} already holds a key pair ({public.name}, {secret.name}); hosts using "
            "it would be locked out by a new one: use another folder, or --force to replace it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for path in (public, secret):
        path.unlink(missing_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(folder), NAME)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


def load_keys(folder: str | os.PathLike | None) -> Keys | None:
    """The key pair of `folder` (None: no keys, sockets stay plain).

    Raises:
        FBPError: the folder or its secret key is missing or unreadable (says what to do).
    """
    if folder is None:
        return None
    path = Path(folder) / f"{NAME}.key_secret"
    if not path.is_file():
        raise FBPError(
            f"no key pair in {folder} ({path.name} is missing): create one with "
            f"`fbp keys generate {folder}` and copy the folder to every host"
        )
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise FBPError(f"cannot read the key pair in {folder}: {exc}") from exc
    if secret is None:
        raise FBPError(f"{path} holds no secret key: regenerate with `fbp keys generate`")
    return Keys(str(Path(folder).resolve()), public, secret)


_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "its key was refused",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the security handshake failed (keys on one side only?)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the security handshake failed (another key?)",
}


def watch_handshakes(socket: zmq.Socket) -> zmq.Socket:
    """A monitor socket for `socket`'s failed handshakes; read it with `handshake_failures`."""
    return socket.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    )


def handshake_failures(monitor: zmq.Socket) -> list[str]:
    """Why handshakes failed since the last call (empty when none did)."""
    from zmq.utils.monitor import recv_monitor_message

    reasons = []
    while monitor.poll(0):
        event = recv_monitor_message(monitor)
        reasons.append(_FAILED.get(event["event"], "the security handshake failed"))
    return reasons

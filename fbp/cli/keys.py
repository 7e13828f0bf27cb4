"""`fbp keys`: CurveZMQ keys for multi-host runs."""

from __future__ import annotations

COMMAND = "keys"
HELP = "make the CurveZMQ key folder that secures agents and links across hosts"
DESCRIPTION = """\
`fbp keys generate DIR` writes a key pair into DIR (created with mode 0700): fbp.key
(public) and fbp.key_secret (secret, mode 0600). Copy the folder to every host of a
multi-host run (or keep it on a shared file system readable only by you) and pass
--keys DIR to `fbp agent` and to `fbp run --hosts`. Every control and data connection is
then encrypted, and a peer without a key of the folder is refused and reported.

To trust another key pair too, copy its public .key file into the folder.

examples:
  fbp keys generate ~/.fbp/keys
  fbp keys generate /shared/beamtime/keys --force      # replace the pair
"""


def add_arguments(parser) -> None:
    """Declare the arguments of `fbp keys`."""
    parser.add_argument("action", choices=["generate"], help="what to do (generate)")
    parser.add_argument("folder", metavar="DIR", help="the key folder")
    parser.add_argument("--force", action="store_true", help="replace a key pair already in DIR")


def run(args) -> int:
    """Generate the pair; raises FBPError (printed by the CLI) when DIR has one already."""
    from fbp.cluster.keys import generate

    public, secret = generate(args.folder, force=args.force)
    print(f"fbp keys: wrote {public} and {secret}")
    print(f"copy {args.folder} to every host, then use --keys {args.folder}")
    return 0

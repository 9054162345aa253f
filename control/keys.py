"""CurveZMQ key pairs for a tcp:// control channel.

    python -m control.keys DIR [--client NAME ...]

makes DIR/server.key{,_secret} (the vrouter's pair: node.control_keys: DIR),
DIR/NAME.key{,_secret} for each client (default one named "client"), and
copies each client's public key into DIR/clients/, the directory of keys the
vrouter lets in. Secret files are mode 0600. Add a client later by running it
again with a new --client; remove one by deleting its key from DIR/clients/.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

import zmq.auth


def make(directory: str, clients=("client",)) -> dict:
    os.makedirs(os.path.join(directory, "clients"), mode=0o700, exist_ok=True)
    made = {}
    names = (["server"] if not os.path.exists(os.path.join(directory, "server.key_secret")) else []) + list(clients)
    for name in names:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"client name {name!r}: must be a plain file name")
        old = os.umask(0o077)
        try:
            pub, sec = zmq.auth.create_certificates(directory, name)
        finally:
            os.umask(old)
        os.chmod(sec, 0o600)
        if name != "server":
            shutil.copy(pub, os.path.join(directory, "clients", f"{name}.key"))
        made[name] = pub
    return made


def load_server(directory: str) -> dict:
    """A server's CurveZMQ keys from a directory made by make(): its pair and the directory of the
    clients it lets in, as control.server.Server's keywords. ValueError names the file that is wrong."""
    path = os.path.join(directory, "server.key_secret")
    try:
        pub, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not pub or not sec:
        raise ValueError(f"{path} has no secret key (python -m control.keys makes one)")
    return {"curve_public": pub, "curve_secret": sec, "allowed_keys_dir": os.path.join(directory, "clients")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m control.keys", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--client", action="append", help="client name (repeatable; default: client)")
    args = ap.parse_args(argv)
    try:
        made = make(args.directory, args.client or ["client"])
    except (OSError, ValueError) as e:
        print(f"control.keys: {e}", file=sys.stderr)
        return 2
    for name, path in made.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

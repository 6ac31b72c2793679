"""``python -m hub``: key generation and command signing for the fleet hub."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hub.signer import keygen, load_private_key, sign_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub", description="Gerbang hub tools")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("keygen", help="create the hub's Ed25519 command-signing key pair")
    gen.add_argument("--out", type=Path, required=True)
    sign = sub.add_parser("sign-command", help="print a signed command as JSON")
    sign.add_argument("--key", type=Path, required=True)
    sign.add_argument("--site", required=True)
    sign.add_argument("--kiosk", required=True)
    sign.add_argument("--name", required=True)
    sign.add_argument("--args", default="{}", help="JSON object")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        try:
            private_path, public_path = keygen(args.out)
        except FileExistsError as exc:
            print(f"refusing to overwrite: {exc.filename}", file=sys.stderr)
            return 2
        print(json.dumps({"private": str(private_path), "public": str(public_path)}))
        return 0
    body = sign_command(
        load_private_key(args.key), args.name, {"site": args.site, "kiosk": args.kiosk}, json.loads(args.args)
    )
    print(json.dumps(body, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

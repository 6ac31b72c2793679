"""``python -m hub``: key generation, command signing, the broker ACL, bundles and the event consumer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hub import broker_acl, bundles, consume_cli
from hub.signer import keygen, load_private_key, sign_command
from kiosk.at_rest import private_umask


def main(argv: list[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(prog="python -m hub", description="Gerbang hub tools")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("keygen", help="create one of the hub's Ed25519 key pairs (command or sync)")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--role", choices=["command", "sync"], default="command")
    sign = sub.add_parser("sign-command", help="print a signed command as JSON")
    sign.add_argument("--key", type=Path, required=True)
    sign.add_argument("--site", required=True)
    sign.add_argument("--kiosk", required=True)
    sign.add_argument("--name", required=True)
    sign.add_argument("--args", default="{}", help="JSON object")
    broker_acl.add_parser(sub)
    bundles.add_parsers(sub)
    consume_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "acl":
        return broker_acl.run(args)
    if args.command in bundles.COMMANDS:
        return bundles.run(args)
    if args.command in consume_cli.COMMANDS:
        return consume_cli.run(args)
    if args.command == "keygen":
        try:
            private_path, public_path = keygen(args.out, args.role)
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

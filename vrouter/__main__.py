"""The ``vrouter`` command.

  vrouter table-demo [ADDRESS ...]   load a real Internet routing table into a
                                     VRF and answer longest-prefix lookups
"""
from __future__ import annotations

import argparse
import sys

from vrouter import tabledemo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vrouter", description="userspace overlay vRouter data plane")
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("table-demo", help="load the real routing table and answer lookups")
    demo.add_argument("addresses", nargs="*", help="IPv4/IPv6 addresses to look up (default: a few well-known)")
    demo.add_argument("--table", default=None, help="gzip file of CIDR prefixes (default: the shared tier-1 table)")
    demo.add_argument("--vrf", type=int, default=1, help="VRF to load it into (default 1)")
    args = parser.parse_args(argv)
    if args.cmd == "table-demo":
        try:
            return tabledemo.run(args.table, args.vrf, args.addresses, out=sys.stdout)
        except (OSError, ValueError) as e:
            print(f"vrouter table-demo: {e}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``vrouter`` command.

  vrouter demo [--keep] [--json]     a two-node cluster in network namespaces driven by the
                                     agent from CN2-style intent; prints the reachability
                                     matrix, expected beside observed (the lab's demo, run as
                                     its own program: the node never imports the lab)
  vrouter run --config node.yaml     run the node: pods' TAP devices, the fabric
                                     (AF_XDP or AF_PACKET), worker threads
"""
from __future__ import annotations

import argparse
import os
import sys


def version_text() -> str:
    from control.protocol import VERSION
    from control.version import __version__
    return f"vrouter {__version__} (control protocol v{VERSION}, Python {sys.version.split()[0]})"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:      # the lab's program, with its own options; replaces this process
        os.execv(sys.executable, [sys.executable, "-m", "control.lab", *argv[1:]])
    parser = argparse.ArgumentParser(prog="vrouter", description="userspace overlay vRouter data plane")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="the two-node cluster demo (vrouter demo --help)")
    run = sub.add_parser("run", help="run the node process (root)")
    run.add_argument("--config", required=True, help="node configuration (YAML); see vrouter/config.py")
    run.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    if args.cmd == "run":
        from vrouter import config, node
        try:
            conf = config.load(args.config)
        except config.ConfigError as e:
            print(f"vrouter run: {args.config}: {e}", file=sys.stderr)
            return 2
        if args.check:
            try:
                node.CheckNode(conf).check()
            except config.ConfigError as e:
                print(f"vrouter run: {args.config}: {e}", file=sys.stderr)
                return 2
            print(f"vrouter run: {args.config}: ok ({len(conf.vifs)} vifs, {len(conf.nexthops)} next hops, "
                  f"{len(conf.routes)} routes, {len(conf.labels)} labels, {len(conf.vnis)} VNIs)")
            return 0
        return node.run(conf)
    return 2


if __name__ == "__main__":
    sys.exit(main())

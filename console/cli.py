"""`cdp console` (serve the API + page) and `cdp console-hash-password` (make a conf/console.yaml hash).

    cdp console --lake data/demo/lake                      # http://127.0.0.1:8765/ , API docs at /docs
    cdp console --lake /lake --users /etc/cdp/console.yaml --host 0.0.0.0 --port 8765   # behind a gateway
"""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

log = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cdp.console.app import create_app
    from cdp.entry import open_spark, settings_from_args

    settings = settings_from_args(args)
    users = args.users or settings.conf_path("console.yaml")
    spark = open_spark(settings)  # the one long-lived session of the server process
    app = create_app(spark, settings, users, exports_dir=args.exports_dir)
    log.info("console on http://%s:%s/ (API docs /docs), lake %s", args.host, args.port, settings.lake_dir)
    # one worker: the SparkSession lives in this process; handlers run in uvicorn's thread pool
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=args.proxy_headers,
                forwarded_allow_ips=args.forwarded_allow_ips, root_path=args.root_path)
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from cdp.console.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("password: ")
    if len(password) < 8:
        print("cdp: error: use a password of at least 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def add_commands(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("console", parents=[common], help="serve the marketer console (HTTP API + web page)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--users", help="users file (default: conf/console.yaml; demo users are local-only)")
    p.add_argument("--exports-dir", help="where export files are kept (default: <lake>/exports)")
    p.add_argument("--root-path", default="", help="path prefix when served behind a gateway, e.g. /cdp")
    p.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from the gateway")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="gateway addresses trusted for X-Forwarded-*")
    p.set_defaults(func=_serve)

    p = subparsers.add_parser("console-hash-password", help="print a scrypt hash for conf/console.yaml")
    p.add_argument("--stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=_hash_password)

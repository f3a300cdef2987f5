"""The ``sipactors`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipactors",
        description="A formally specified, actor-model SIP system (RFC 3261 and extensions).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="parse one SIP message and show its structure, or exactly why it is malformed",
        description="Parse one SIP message (a file, or - for standard input) and print its start line, every "
        "header parsed into its fields and the body; or the error, the offending line and the grammar rule. "
        "Exit status: 0 well formed, 1 malformed, 2 well formed but a server must refuse it.",
    )
    check.add_argument("source", metavar="FILE|-", help="message file, or - for standard input")
    check.add_argument("--oracle", action="store_true", help="use Lark's LALR parser over grammar/sip.lark")
    check.add_argument(
        "--core-only", action="store_true",
        help="validate only the core headers (as a server does before dispatch); others stay unchecked",
    )
    check.add_argument("--json", action="store_true", help="print the structure as JSON")
    serve = commands.add_parser(
        "serve", help="run the SIP server (UDP and TCP on 127.0.0.1:5060 unless told otherwise)",
        description="Run the SIP server: UDP and TCP listeners, every transaction an actor driven by its "
        "RFC 3261 table. Stops cleanly on SIGINT or SIGTERM.",
    )
    serve.add_argument("--host", help="address to listen on, for UDP and TCP (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on, for UDP and TCP (default 5060; 0: any free)")
    serve.add_argument("--config", type=Path, help="TOML configuration file (see examples/sipactors.toml)")
    serve.add_argument("--trace", help="write every message and state transition as JSON lines to this file")
    color = check.add_mutually_exclusive_group()
    color.add_argument("--color", dest="color", action="store_true", default=None, help="force colour")
    color.add_argument("--no-color", dest="color", action="store_false", help="no colour")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from sipactors.server import load_config, serve

        return serve(load_config(args.config, args.host, args.port, args.trace))
    if args.command == "check":
        from sipactors.check import run_check

        try:
            return run_check(
                args.source, oracle=args.oracle, validate_all=not args.core_only, as_json=args.json,
                color=args.color,
            )
        except BrokenPipeError:  # "sipactors check FILE | head": the reader left, nothing more to say
            sys.stderr.close()
            return 0
        except OSError as error:
            print(f"sipactors check: {error}", file=sys.stderr)
            return 66
    return 64


if __name__ == "__main__":
    sys.exit(main())

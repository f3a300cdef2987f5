"""The ``sipactors`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sipactors.store import DEFAULT_STORE_URL


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
    serve.add_argument(
        "--store", help="where registrations and users live (default sqlite:///./sipactors.db; memory: for none)",
    )
    serve.add_argument(
        "--no-dns", action="store_true",
        help="never query DNS: next hops are numeric addresses or names of the [hosts] table; other names get "
        "404 at once (isolated labs and test beds; same as [dns] enabled = false)",
    )
    users = commands.add_parser(
        "users", help="add, delete or list the users who may register (digest credentials)",
        description="Manage the users of the store. Only HA1 for MD5 and SHA-256 (RFC 7616) is stored, never "
        "the password. Exit status: 0 done, 1 no such user, 64 usage error, 66 the store cannot be opened.",
    )
    users_actions = users.add_subparsers(dest="action", required=True)
    add = users_actions.add_parser("add", help="add a user, or set a new password")
    add.add_argument("user", metavar="USER[@DOMAIN]")
    add.add_argument("--domain", help="the user's domain (default: the part after @ in USER)")
    add.add_argument("--realm", help="the digest realm (default: the domain)")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    secret.add_argument("--password", help="the password (visible to other local users in the process list)")
    delete = users_actions.add_parser("del", help="delete a user")
    delete.add_argument("user", metavar="USER")
    delete.add_argument("--realm", help="only from this realm (default: every realm)")
    users_list = users_actions.add_parser("list", help="list the users")
    bindings = commands.add_parser(
        "bindings", help="show the registrations in the store",
        description="Show the location service: each AOR's unexpired bindings (RFC 3261 §10).",
    )
    bindings_actions = bindings.add_subparsers(dest="action", required=True)
    bindings_list = bindings_actions.add_parser("list", help="list the unexpired bindings")
    bindings_list.add_argument("aor", nargs="?", metavar="AOR", help="only this address-of-record")
    presence = commands.add_parser(
        "presence", help="who may watch whose presence: allow, block, polite-block, confirm (RFC 5025)",
        description="Manage the watcher authorization rules of the store. WATCHER is a user (bob, bob@example.com, "
        "a URI), a domain (*@example.com) or * (the presentity's default). A running server applies a change "
        "within a second. Exit status: 0 done, 1 no such rule, 64 usage error, 66 the store cannot be opened.",
    )
    presence_actions = presence.add_subparsers(dest="action", required=True)
    presence_commands = []
    for name, text in (("allow", "the watcher sees the presence"), ("block", "the watcher is refused"),
                       ("polite-block", "the watcher sees the presentity offline"),
                       ("confirm", "the watcher waits for approval (the default)"),
                       ("forget", "remove the rule")):
        rule = presence_actions.add_parser(name, help=text)
        rule.add_argument("presentity", metavar="PRESENTITY")
        rule.add_argument("watcher", metavar="WATCHER")
        presence_commands.append(rule)
    presence_rules = presence_actions.add_parser("rules", help="list the rules")
    presence_rules.add_argument("presentity", nargs="?", metavar="PRESENTITY", help="only this presentity's")
    presence_commands.append(presence_rules)
    for rule in presence_commands:
        rule.add_argument("--domain", help="the domain of bare names (default: that of the store's users, if one)")
    lists = commands.add_parser(
        "lists", help="manage presence lists (buddy lists with their own URI, RFC 4662)",
        description="Manage the presence lists the resource list server serves (RFC 4662): a SUBSCRIBE to a "
        "list's URI with Supported: eventlist, from its owner, gets the state of every member. Exit status: 0 "
        "done, 1 no such list or member, 64 usage error, 66 the store cannot be opened.",
    )
    lists_actions = lists.add_subparsers(dest="action", required=True)
    lists_add = lists_actions.add_parser("add", help="add a list, or change its owner or name")
    lists_add.add_argument("list_uri", nargs="?", metavar="LIST-URI",
                           help="the list's own URI (default: sip:USER-buddies@DOMAIN of the owner)")
    lists_add.add_argument("--owner", required=True, metavar="AOR", help="the user who may subscribe to it")
    lists_add.add_argument("--name", default="", help="display name (RLMI <name>)")
    lists_del = lists_actions.add_parser("del", help="delete a list and its members")
    lists_del.add_argument("list_uri", metavar="LIST-URI")
    lists_show = lists_actions.add_parser("show", help="show one list or every list with its members")
    lists_show.add_argument("list_uri", nargs="?", metavar="LIST-URI")
    member = lists_actions.add_parser("member", help="add or delete a member of a list")
    member_actions = member.add_subparsers(dest="member_action", required=True)
    member_add = member_actions.add_parser("add", help="append a local presentity to a list")
    member_add.add_argument("list_uri", metavar="LIST-URI")
    member_add.add_argument("member", metavar="MEMBER")
    member_add.add_argument("--name", default="", help="display name (RLMI <name>)")
    member_add.add_argument("--domain", action="append", default=[],
                            help="another local domain (besides the list's and the owner's); repeatable")
    member_del = member_actions.add_parser("del", help="remove a member from a list")
    member_del.add_argument("list_uri", metavar="LIST-URI")
    member_del.add_argument("member", metavar="MEMBER")
    messages = commands.add_parser(
        "messages", help="show the stored instant messages",
        description="Show the MESSAGEs stored for users with no device registered (RFC 3428 §7), oldest first.",
    )
    messages_actions = messages.add_subparsers(dest="action", required=True)
    messages_list = messages_actions.add_parser("list", help="list the messages waiting for delivery")
    messages_list.add_argument("aor", nargs="?", metavar="AOR", help="only this address-of-record")
    for store_command in (add, delete, users_list, bindings_list, *presence_commands, lists_add, lists_del,
                          lists_show, member_add, member_del, messages_list):
        store_command.add_argument(
            "--store", default=DEFAULT_STORE_URL, metavar="URL",
            help=f"the store: sqlite:///PATH or memory: (default {DEFAULT_STORE_URL})",
        )
    color = check.add_mutually_exclusive_group()
    color.add_argument("--color", dest="color", action="store_true", default=None, help="force colour")
    color.add_argument("--no-color", dest="color", action="store_false", help="no colour")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from sipactors.server import load_config, serve

        return serve(load_config(args.config, args.host, args.port, args.trace, args.store, no_dns=args.no_dns))
    if args.command == "users":
        from sipactors.admin import run_users

        return run_users(
            args.action, args.store, getattr(args, "user", None), getattr(args, "domain", None),
            getattr(args, "realm", None), getattr(args, "password", None), getattr(args, "password_stdin", False),
        )
    if args.command == "presence":
        from sipactors.rules_admin import run_presence

        return run_presence(args.action, args.store, args.presentity, getattr(args, "watcher", None), args.domain)
    if args.command == "bindings":
        from sipactors.admin import run_bindings

        return run_bindings(args.store, args.aor)
    if args.command == "lists":
        from sipactors.admin_lists import run_lists

        action = f"member-{args.member_action}" if args.action == "member" else args.action
        return run_lists(action, args.store, args.list_uri, getattr(args, "owner", None), getattr(args, "name", ""),
                         getattr(args, "member", None), getattr(args, "domain", ()))
    if args.command == "messages":
        from sipactors.admin import run_messages

        return run_messages(args.store, args.aor)
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

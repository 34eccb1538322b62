"""`conduit`: the command line. Thin: each command parses its arguments and calls the
runtime, the stores or a connector; the commands live beside this module by topic."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from engine.cli.audit_reports import add_commands as add_audit_reports
from engine.cli.audit_reports import cmd_audit_check_export
from engine.cli.backup import add_commands as add_backup_commands
from engine.cli.bench import (
    cmd_ack,
    cmd_map,
    cmd_mapping_coverage,
    cmd_mapping_diff,
    cmd_parse,
    cmd_test,
)
from engine.cli.common import DEFAULT_CONF
from engine.cli.daemon import cmd_run, cmd_validate
from engine.cli.keys import cmd_keys_rotate, cmd_keys_status
from engine.cli.retention import add_commands as add_retention_commands
from engine.cli.send import cmd_send
from engine.errors import ConduitError, ConfigErrors

_NO_CONF = frozenset({cmd_send, cmd_parse, cmd_ack,  # files and sockets only, no settings
                      cmd_audit_check_export})


def _on_use(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command `name` of `module`, imported when it runs. The admin and
    change-control commands import the channels' loader and every connector, most of a
    CLI start (0.6 of 0.7 s on a 2-core machine), which `conduit send` need not pay."""
    def command(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    command.__name__ = command.__qualname__ = name
    return command


cmd_audit_show = _on_use("engine.cli.admin", "cmd_audit_show")
cmd_audit_verify = _on_use("engine.cli.admin", "cmd_audit_verify")
cmd_queue_dead = _on_use("engine.cli.admin", "cmd_queue_dead")
cmd_queue_list = _on_use("engine.cli.admin", "cmd_queue_list")
cmd_queue_retry = _on_use("engine.cli.admin", "cmd_queue_retry")
cmd_users = _on_use("engine.cli.admin", "cmd_users")
cmd_deploy = _on_use("engine.cli.deploy", "cmd_deploy")
cmd_revisions = _on_use("engine.cli.deploy", "cmd_revisions")
cmd_rollback = _on_use("engine.cli.deploy", "cmd_rollback")


def _add_conf(parser: argparse.ArgumentParser) -> None:
    """--conf, the one declaration, given to the top level and to every command that reads
    the configuration, so `conduit --conf X run` and `conduit run --conf X` both work.
    SUPPRESS: a command without it keeps what came before the command's name."""
    parser.add_argument("--conf", default=argparse.SUPPRESS, metavar="PATH",
                        help=f"engine settings (default {DEFAULT_CONF} or $CONDUIT_CONF)")


def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every command's own parser (`run`, `queue list`, ...), the leaves of the tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from commands(child)


def _workers(text: str) -> tuple[str, ...]:
    from engine.supervisor import parse_workers

    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit interface engine")
    _add_conf(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--workers", type=_workers, default=("all",), metavar="N",
                     help="engine processes sharing the store and the listeners' ports "
                          "(one per core); default 1. ingest=N,deliver=M splits taking "
                          "messages in from delivering them")
    run.add_argument("--deploy", action="store_true",
                     help="make the files on disk a revision when they differ from the "
                          "live one (with change control it still waits for approval)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("validate", help="check conf/ and channels/").set_defaults(func=cmd_validate)
    send = sub.add_parser("send", help="send HL7v2 files over MLLP and print each ACK code")
    send.add_argument("--mllp", required=True, metavar="HOST:PORT")
    send.add_argument("--timeout", type=float, default=30.0)
    send.add_argument("files", nargs="+", metavar="FILE")
    send.set_defaults(func=cmd_send)
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="what",
                                                                           required=True)
    audit.add_parser("verify", help="check the hash chain").set_defaults(func=cmd_audit_verify)
    show = audit.add_parser("show", help="every hop of one message")
    show.add_argument("--message", required=True, metavar="ID")
    show.set_defaults(func=cmd_audit_show)
    add_audit_reports(audit)
    queue = sub.add_parser("queue", help="destination queues").add_subparsers(dest="what",
                                                                              required=True)
    queue.add_parser("list", help="depth, in-flight, retrying, dead, and why").set_defaults(
        func=cmd_queue_list)
    dead = queue.add_parser("dead", help="a destination's newest dead letters and why")
    dead.add_argument("destination", metavar="DESTINATION",
                      help="CHANNEL/DESTINATION, or a destination name that is unique")
    dead.add_argument("--limit", type=int, default=20, help="how many (newest first)")
    dead.set_defaults(func=cmd_queue_dead)
    retry = queue.add_parser("retry", help="put a destination's dead letters back")
    retry.add_argument("destination", metavar="DESTINATION",
                       help="CHANNEL/DESTINATION, or a destination name that is unique")
    retry.set_defaults(func=cmd_queue_retry)
    levels = ["off", "lenient", "strict"]
    parse = sub.add_parser("parse", help="what a message is, and every problem in its "
                           "structure (no mapping is run)")
    parse.add_argument("files", nargs="+", metavar="FILE")
    parse.add_argument("--validate", choices=levels, default="strict",
                       help="structure validation (HL7v2: hl7apy); default strict")
    parse.set_defaults(func=cmd_parse)
    ack = sub.add_parser("ack", help="the acknowledgement the engine would send")
    ack.add_argument("file", metavar="FILE")
    ack.add_argument("--validate", choices=levels, default=None,
                     help="structure validation as a channel with this level does "
                          "(default: the channel's with --channel, else off)")
    ack.add_argument("--channel", metavar="NAME",
                     help="answer as this channel of channels/ would: its validation, "
                          "filter and mapping, run dry (nothing stored or sent; "
                          "duplicates not checked)")
    ack.set_defaults(func=cmd_ack)
    test = sub.add_parser("test", help="run every mapping's and channel's fixtures")
    test.add_argument("names", nargs="*", metavar="NAME",
                      help="only these mappings (name or name@version) or channels")
    test.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    test.set_defaults(func=cmd_test)
    map_ = sub.add_parser("map", help="what a mapping makes of a message")
    map_.add_argument("mapping", metavar="NAME@VERSION")
    map_.add_argument("file", metavar="FILE")
    map_.add_argument("--report", action="store_true",
                      help="also list, on stderr, every field that held a value the "
                           "mapping did not read")
    map_.set_defaults(func=cmd_map)
    mapping = sub.add_parser("mapping", help="mapping versions").add_subparsers(
        dest="what", required=True)
    mdiff = mapping.add_parser("diff", help="how two versions' outputs differ, per message")
    mdiff.add_argument("a", metavar="NAME@A")
    mdiff.add_argument("b", metavar="NAME@B")
    mdiff.add_argument("files", nargs="+", metavar="FILE")
    mdiff.set_defaults(func=cmd_mapping_diff)
    cover = mapping.add_parser("coverage", help="HL7v2 message types and the FHIR resources "
                               "each maps to, as a Markdown table")
    cover.add_argument("--update", metavar="FILE",
                       help="rewrite the table between FILE's coverage markers (README.md)")
    cover.set_defaults(func=cmd_mapping_coverage)
    roles = ["viewer", "operator", "analyst", "auditor", "admin", "integration"]
    users = sub.add_parser("users", help="users and API tokens").add_subparsers(
        dest="what", required=True)
    users.add_parser("list", help="every user and role").set_defaults(func=cmd_users)
    add = users.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=roles)
    add.set_defaults(func=cmd_users)
    token = users.add_parser("token", help="make a new token (printed once, stored hashed)")
    token.add_argument("name")
    token.set_defaults(func=cmd_users)
    role = users.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=roles)
    role.set_defaults(func=cmd_users)
    remove = users.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_users)
    _add_change_control(sub)
    add_backup_commands(sub)  # backup, restore
    add_retention_commands(sub)  # retention run
    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="what",
                                                                          required=True)
    keys.add_parser("rotate", help="make a new content key; running engines switch to "
                    "it, re-encrypt older content and retire old keys").set_defaults(
        func=cmd_keys_rotate)
    keys.add_parser("status", help="each content key, its state and the records it seals"
                    ).set_defaults(func=cmd_keys_status)
    for command in commands(parser):
        if command.get_default("func") not in _NO_CONF:
            _add_conf(command)
    return parser


def _add_change_control(sub: argparse._SubParsersAction) -> None:
    """`deploy`, `rollback` and `revisions` (engine.cli.deploy)."""
    token = {"metavar": "FILE", "help": "a file holding your API token (or set "
             "CONDUIT_TOKEN): who you are, when change control is on or you approve"}
    deploy = sub.add_parser("deploy", help="make channels/ and mappings/ a revision (live "
                            "at once, or after another admin approves); approve|reject N")
    deploy.add_argument("action", nargs="?", choices=["approve", "reject"])
    deploy.add_argument("number", nargs="?", type=int, metavar="N")
    deploy.add_argument("--reason", help="why (kept with the revision and audited)")
    deploy.add_argument("--diff", action="store_true",
                        help="only show how the files differ from the live revision")
    deploy.add_argument("--token-file", **token)
    deploy.set_defaults(func=cmd_deploy)
    rollback = sub.add_parser("rollback", help="a new revision with revision N's content")
    rollback.add_argument("number", type=int, metavar="N")
    rollback.add_argument("--reason")
    rollback.add_argument("--token-file", **token)
    rollback.set_defaults(func=cmd_rollback)
    revisions = sub.add_parser("revisions", help="revisions of channels and mappings"
                               ).add_subparsers(dest="what", required=True)
    listing = revisions.add_parser("list", help="the newest revisions and their state")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_revisions)
    show = revisions.add_parser("show", help="one revision: hashes and its diff")
    show.add_argument("number", type=int, metavar="N")
    show.set_defaults(func=cmd_revisions)
    revisions.add_parser("diff", help="the files on disk against the live revision"
                         ).set_defaults(func=cmd_revisions)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigErrors as exc:
        print(f"conduit: the configuration has {len(exc.errors)} error(s):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 2
    except ConduitError as exc:
        from engine import logs

        logs.fatal(f"conduit: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`conduit map ... | head`): what was left is not wanted,
        # and Python's flush at exit must not raise again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

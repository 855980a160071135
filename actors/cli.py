"""``lts``: the command-line entry point (console script ``lts = actors.cli:main``).

``lts <command> [options] [--load_config FILE] [--save_config FILE] [--key value ...]``

The dispatcher imports only the chosen command's module (``actors/commands/<name>.py``,
contract in ``actors.commands``), parses its options, turns every other ``--key value``
pair into a config value, builds and validates the config (defaults < file < CLI, then
the configured plugins' parameters as the lowest layer), checks the configured plugin
names, saves the config if asked, and runs the command. A user error (any ``LTSError``)
is one line on stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from actors.commands import COMMANDS
from engine.errors import LTSError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

GLOBAL_HELP = """global options (every command):
  --load_config FILE, --config FILE
                        JSON config to load; a bare NAME loads the bundled configs/NAME.json
  --save_config FILE    write the values that differ from the defaults to FILE (JSON)
  --key value           any config key: a global one (`lts plugins --globals`) or a
                        parameter of a configured plugin (`lts plugins`); values are
                        typed: true/false, null, numbers, JSON ([...], {...}), else text
"""


COMMAND_EPILOG = """other options:
  --key value           any config key: a global one (`lts plugins --globals`) or a
                        parameter of a configured plugin (`lts plugins`); values are
                        typed: true/false, null, numbers, JSON ([...], {...}), else text
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lts")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lts",
        description="LTS: a multi-user, actor-based trading engine on Ray.",
        epilog=GLOBAL_HELP + "\nRun `lts <command> --help` for a command's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lts {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="<command>")
    for name, help_text in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"lts {name}",
        description=COMMANDS[name],
        epilog=COMMAND_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--conf` must not silently mean `--config`
    )
    config_opts = parser.add_argument_group("config")
    config_opts.add_argument(
        "--load_config",
        "--config",
        dest="load_config",
        metavar="FILE",
        help="JSON config file, or the name of a bundled config (e.g. simulation)",
    )
    config_opts.add_argument(
        "--save_config", metavar="FILE", help="write the values that differ from defaults"
    )
    module.configure(parser)
    return parser


def split_config_pairs(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Split ``argv`` into tokens for ``parser`` and the ``--key value`` config pairs it
    does not know (``--key=value``, ``--key value``, bare ``--flag``). Everything after
    a ``--`` goes to the parser."""
    known = set(parser._option_string_actions)  # argparse has no public accessor
    own: list[str] = []
    pairs: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            own.extend(argv[i:])
            break
        if token.startswith("--") and token.split("=", 1)[0] not in known:
            pairs.append(token)
            has_value = "=" not in token and i + 1 < len(argv)
            if has_value and not argv[i + 1].startswith("--"):
                pairs.append(argv[i + 1])
                i += 1
        else:
            own.append(token)
        i += 1
    return own, pairs


def _parse_own_args(parser: argparse.ArgumentParser, tokens: list[str]) -> argparse.Namespace:
    """Positionals may be interleaved with options (``lts backtest a.csv --x 1 b.csv``);
    argparse supports that except for a few parser shapes (sub-parsers, REMAINDER)."""
    try:
        return parser.parse_intermixed_args(tokens)
    except TypeError:
        return parser.parse_args(tokens)


def _import_command(name: str) -> ModuleType | None:
    module_name = f"actors.commands.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(name: str, message: str, code: int = EXIT_USAGE) -> int:
    one_line = " ".join(str(message).split())
    print(f"lts {name}: error: {one_line}", file=sys.stderr)
    return code


def _dispatch(name: str, argv: Sequence[str]) -> int:
    try:
        module = _import_command(name)
    except Exception as exc:  # the command module itself is broken
        return _fail(name, f"cannot load the command: {type(exc).__name__}: {exc}", EXIT_INTERNAL)
    if module is None:
        print(f"lts {name}: not yet available", file=sys.stderr)
        return EXIT_USAGE
    parser = _command_parser(name, module)
    own, pairs = split_config_pairs(parser, argv)
    try:
        args = _parse_own_args(parser, own)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return int(exc.code or 0)

    # Imported here: `lts --help` stays instant and never touches pandas/pydantic.
    from engine.config import build_config, save_config

    extra = getattr(module, "extra_plugins", None)
    built = build_config(
        args.load_config,
        pairs,
        require_loadable=getattr(module, "REQUIRE_LOADABLE_PLUGINS", True),
        extra_plugins=extra(args) if extra else (),
    )
    config = built.config
    _setup_logging(config["log_level"])
    if args.save_config:
        save_config(config, args.save_config)
    return int(module.run(config, args) or 0)


def _command_first(argv: list[str]) -> list[str]:
    """``lts --config f.json run`` -> ``lts run --config f.json``: options given before
    the command are the command's too (the top level itself only has --help/--version)."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("-h", "--help", "--version"):
        return argv
    for i, token in enumerate(argv):
        if token in COMMANDS and (i == 0 or not argv[i - 1].startswith("--") or "=" in argv[i - 1]):
            return [token, *argv[:i], *argv[i + 1 :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lts`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _command_first(argv)
    if not argv or argv[0].startswith("-"):
        parser = _top_parser()
        if not argv:
            parser.print_help()
            return EXIT_USAGE
        try:
            parser.parse_args(argv)  # --help / --version exit here
        except SystemExit as exc:
            return int(exc.code or 0)
        return EXIT_USAGE  # pragma: no cover - argparse always exits above
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from engine.suggestions import did_you_mean

        close = did_you_mean(name, COMMANDS)
        hint = f"; {close}" if close else ""
        return _fail(name, f"unknown command {name!r} (commands: {', '.join(COMMANDS)}){hint}")
    try:
        return _dispatch(name, rest)
    except LTSError as exc:
        return _fail(name, str(exc))
    except KeyboardInterrupt:
        print(f"lts {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line; the traceback goes to DEBUG logs
        logger.debug("unhandled error in `lts %s`", name, exc_info=True)
        return _fail(
            name,
            f"internal error: {type(exc).__name__}: {exc} (run with --log_level DEBUG for details)",
            EXIT_INTERNAL,
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

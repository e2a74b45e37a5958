"""`kerasdl study list` and `kerasdl study NAME [--quick] [--output DIR] [--seed N]`."""

from __future__ import annotations

import os
import sys
import time

from kerasdl.tasks import exit_codes


def main(argv: list[str] | None = None) -> int:
    """Runs the `kerasdl study` command; returns the exit status."""
    from kerasdl.studies import available, get_study
    from kerasdl.tasks.command_line import (
        ArgumentParser,
        configure_logging,
        run_with_exit_codes,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kerasdl study {list,NAME} [--quick] [--output DIR] [--seed N]")
        return exit_codes.OK if argv else exit_codes.USAGE
    if argv[0] == "list":
        if argv[1:]:
            return _fail(f"study list takes no arguments, got {' '.join(argv[1:])!r}")
        for name, study in available().items():
            print(f"{name:20s}  {study.load().DESCRIPTION}")
        return exit_codes.OK
    name = argv[0]
    try:
        study = get_study(name)
    except ValueError as error:
        return _fail(str(error))
    if name not in available():
        return _fail(f"study {name!r} is not in this installation yet")
    module = study.load()
    parser = ArgumentParser(
        prog=f"kerasdl study {name}", description=module.DESCRIPTION
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes (seconds; for tests)"
    )
    parser.add_argument(
        "--output",
        default=os.path.join("runs", "studies", name),
        help="where results.csv, the figures and summary.md go "
        f"(default: runs/studies/{name})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    args = parser.parse_args(argv[1:])
    configure_logging(verbose=False)

    def run():
        from kerasdl.studies.framework import write_report
        from kerasdl.tasks.exit_codes import UsageError
        from kerasdl.tasks.run_directory import check_writable_directory

        if not 0 <= args.seed < 2**32:
            raise UsageError(f"--seed must be within [0, 4294967295]; got {args.seed}")
        check_writable_directory(args.output, "--output")
        start = time.perf_counter()
        report = module.run(args.output, quick=args.quick, seed=args.seed)
        seconds = time.perf_counter() - start
        command = f"kerasdl study {name}" + (" --quick" if args.quick else "")
        if args.seed:
            command += f" --seed {args.seed}"
        paths = write_report(
            report,
            args.output,
            name=name,
            title=module.DESCRIPTION,
            seconds=seconds,
            quick=args.quick,
            command=command,
        )
        for v in report.verdicts:
            print(f"{v.verdict:>14s}  {v.claim.phrase}: {v.measured}")
        print(f"Study {name} took {seconds:.0f} s; summary: {paths['summary']}")

    return run_with_exit_codes(run)


def _fail(message: str) -> int:
    print(f"kerasdl study: error: {message}", file=sys.stderr)
    return exit_codes.USAGE

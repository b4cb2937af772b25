"""The ``mlgrade`` command line: run, check, selfcheck-images, validate, list, setup-worker, build, template, grade,
certificates."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from mlgrade.course import COURSE_ENV, COURSE_FILE, CourseError, UnknownAssignment, open_course
from mlgrade.results import earned, passed
from mlgrade.staging import stage
from mlgrade.terminal import PrintableConsole, printable

console = PrintableConsole(highlight=False)  # every text it prints is filtered (mlgrade.terminal)
EXIT_NOT_GRADED = 3  # grading did not complete: an engine failure, never the student's score


def _table(outcome, title: str, show_output: bool = True) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("test")
    table.add_column("score", justify="right")
    table.add_column("", justify="center")
    for t in outcome.tests:
        got = earned(t)
        mark = "[green]✓[/]" if passed(t) else "[red]✗[/]"
        vis = "" if t.visibility == "visible" else f" [dim]({t.visibility})[/]"
        table.add_row(t.number or "", escape(t.name) + vis, f"{got:g}/{t.max_score:g}", mark)
    return table


def _print_failures(outcome) -> None:
    """Each failure message once: tests that failed with the same message share one heading."""
    by_message: dict[str, list] = {}
    for t in outcome.tests:
        if not passed(t) and t.output:
            by_message.setdefault(t.output, []).append(t)
    for message, tests in by_message.items():
        title = tests[0].name if len(tests) == 1 else f"{tests[0].name} and {len(tests) - 1} more test(s)"
        console.rule(f"[red]{escape(printable(title))}", align="left")
        if len(tests) > 1:
            console.print(printable("also: " + "; ".join(t.name for t in tests[1:])), markup=False, style="dim")
        console.print(printable(message), markup=False)  # a student's output may hold escape sequences


def _without_failures(log: str) -> str:
    """pytest's log without its failure records (``E`` lines, their continuations and locations):
    the messages are printed once, by test; what stays is its summary and the grader errors."""
    kept, in_failures = [], False
    for line in log.splitlines():
        if line.startswith("=") and "FAILURES" in line:
            in_failures = True
            continue
        if in_failures and (line.startswith(("E ", "    ", "/")) or not line.strip() or ".py:" in line.split(" ")[0]):
            continue
        in_failures = False
        kept.append(line)
    return "\n".join(kept)


def _print_total(outcome) -> None:
    res = outcome.results
    maximum = sum(t.max_score for t in outcome.tests)
    console.print(f"[bold]Score: {res['score']:g} / {maximum:g}[/]   ({res['execution_time']} s)")
    if res["output"]:
        console.print(printable(res["output"]), markup=False)


def cmd_run(args) -> int:
    from mlgrade.runner import grade

    assignment = open_course(args.course).get(args.assignment)
    # pytest's log is not echoed: its failure lines repeat the messages printed below, once
    outcome = grade(assignment, Path(args.submission), args.results)
    console.print(_table(outcome, f"{assignment.id}: {args.submission}"))
    if args.verbose:
        _print_failures(outcome)
        if outcome.log.strip():
            console.print(printable(_without_failures(outcome.log)), markup=False)
    _print_total(outcome)
    console.print(f"[dim]results written to {args.results}[/]")
    if not outcome.graded:
        if not args.verbose:  # the instructor needs the reason even without -v
            console.print(printable(outcome.log[-3000:]), markup=False)
        console.print(f"[red]mlgrade: no score was given: the autograder failed (exit status {EXIT_NOT_GRADED})[/]")
        return EXIT_NOT_GRADED
    return 0


def _stage(assignment, files: list[str]) -> Path:
    """Stage only the contract's files into a fresh folder (nothing else is graded)."""
    staged = Path(tempfile.mkdtemp(prefix="mlgrade-check-"))
    accepted = {name for f in assignment.files for name in f.accept}
    candidates = [Path(f) for f in files] if files else [Path(name) for name in sorted(accepted)]
    found = {}
    for path in candidates:
        if path.name not in accepted:
            raise SystemExit(f"mlgrade check: {path.name} is not a file of {assignment.id} "
                             f"(expected one of {', '.join(sorted(accepted))})")
        if os.path.lexists(path):
            found[path.name] = path  # staged with its modification time: the newer file is graded
        elif files:
            raise SystemExit(f"mlgrade check: {path} not found")
    problems = stage(assignment, found, staged)
    if problems:  # a link, a device, a file too large: the autograder would not read it either
        shutil.rmtree(staged, ignore_errors=True)
        raise SystemExit("mlgrade check: " + "; ".join(problems))
    return staged


def cmd_check(args) -> int:
    from mlgrade.runner import grade, keeping_fork_servers

    assignment = open_course(args.course).get(args.assignment)
    if args.page and not args.page.endswith((".html", ".htm")):  # `--page hw6.py` must not overwrite the work
        raise SystemExit(f"mlgrade check: --page {args.page}: the page's path must end in .html (to check that "
                         f"file, name it before --page: mlgrade check {assignment.id} {args.page} --page)")
    staged = _stage(assignment, args.files)
    try:
        with keeping_fork_servers():  # one fork server for the checks and the figures
            outcome = grade(assignment, staged, None, public_only=True)
            drawn = None
            if args.page is not None:
                from mlgrade.figures import draw_figures

                drawn = draw_figures(assignment, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    console.print(_table(outcome, f"{assignment.id}: public checks"))
    _print_failures(outcome)
    _print_total(outcome)
    console.print("[dim]These are the public checks only; hidden tests on Gradescope check more.[/]")
    if drawn is not None:
        _write_page(assignment, outcome, drawn, Path(args.page or f"{assignment.id}-selfcheck.html"))
    return 0 if all(passed(t) for t in outcome.tests) else 1


def _write_page(assignment, outcome, drawn, path: Path) -> None:
    from mlgrade.selfcheck_page import write_page

    graded = " ".join(outcome.results.get("output", "").splitlines()[:2])[:400]
    failed = [f"{t.name}: {t.output.strip().splitlines()[0][:300]}" if t.output.strip() else t.name
              for t in outcome.tests if not passed(t)]
    path = write_page(path, assignment, drawn, graded, (sum(passed(t) for t in outcome.tests), len(outcome.tests)),
                      failed).resolve()
    made = sum(d.png is not None for d in drawn)
    console.print(printable(f"Wrote the self-check page {path} ({made} of {len(drawn)} figures made from your code)."
                            f" Open it: python3 -m webbrowser {path.as_uri()}"), markup=False, soft_wrap=True)


def cmd_selfcheck_images(args) -> int:
    from mlgrade.figures import write_reference_images

    assignment = open_course(args.course).get(args.assignment)
    written, problems = write_reference_images(assignment, Path(args.output) if args.output else None)
    for path in written:
        console.print(printable(f"wrote {path}"), markup=False)
    if not written and not problems:
        console.print(f"{assignment.id} declares no figures ({assignment.selfcheck_file} does not exist)")
    for text in problems:
        console.print(printable(f"mlgrade: {text}"), markup=False, style="red")
    return 1 if problems else 0


def cmd_validate(args) -> int:
    from mlgrade.validate import validate

    assignment = open_course(args.course).get(args.assignment)
    report = validate(assignment, only=args.only, console=console, jobs=args.jobs)
    return 0 if report.ok else 1


def cmd_list(args) -> int:
    course = open_course(args.course)
    table = Table(title=f"{escape(course.name)}: {course.root}", title_justify="left")
    for col in ("id", "files", "exercises", "graders"):
        table.add_column(col)
    for a in course.assignments():
        files = ", ".join(" or ".join(f.accept) for f in a.files)
        exercises = "\n".join(f"{k}: {', '.join(v)}" for k, v in a.exercises.items())
        table.add_row(a.id, files, exercises, "yes" if a.has_graders() else "public checks only")
    console.print(table)
    return 0


def cmd_new(args) -> int:
    from mlgrade import scaffold

    if args.what == "course":
        root = scaffold.new_course(Path(args.name), args.title)
        console.print(f"made the course {escape(str(root))}: next, `cd {escape(str(root))}` and "
                      "`mlgrade new assignment hw1`")
        return 0
    course = open_course(args.course)
    made = scaffold.new_assignment(course, args.name, args.title)
    for path in made:
        console.print(f"wrote {escape(str(path.relative_to(course.root)))}")
    console.print(f"next: write your solution in reference/{args.name}/, then `mlgrade template {args.name}`, "
                  f"`mlgrade validate {args.name}`, `mlgrade build {args.name}` (README: Your own course)")
    return 0


def cmd_setup_worker(args) -> int:
    from mlgrade.provision import main as setup

    return setup()


def cmd_build(args) -> int:
    from mlgrade import build

    assignment = open_course(args.course).get(args.assignment)
    if args.student:
        path = build.build_student(assignment, Path(args.output))
    else:
        path = build.build_autograder(assignment, Path(args.output), Path(args.wheelhouse) if args.wheelhouse else None)
    console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def cmd_template(args) -> int:
    from mlgrade import template

    assignment = open_course(args.course).get(args.assignment)
    try:
        if args.check:
            problems = template.stale(assignment)
            for text in problems:
                console.print(f"[red]{escape(text)}[/]")
            if not problems:
                console.print(f"{assignment.id}: the student template is up to date")
            return 1 if problems else 0
        for path in template.write(assignment, Path(args.output) if args.output else None):
            console.print(f"wrote {path}")
    except template.TemplateError as exc:
        console.print(f"[red]mlgrade: {escape(str(exc))}[/]")
        return 2
    return 0


def cmd_grade(args) -> int:
    from mlgrade.batch import ExportError, grade_class

    assignment = open_course(args.course).get(args.assignment)
    cluster = None
    if args.scheduler:  # only then is Dask imported: the local pool needs none of it
        from mlgrade.cluster import ClusterError, client_security, connect

        try:
            security = client_security(args.scheduler, args.tls_ca_file, args.tls_cert, args.tls_key,
                                       allow_plain_tcp=args.unsafe_plain_tcp)
            cluster = connect(args.scheduler, assignment, security)
        except ClusterError as exc:
            console.print(printable(f"mlgrade: {exc}"), markup=False)
            return 2
        for note in cluster.notes:
            console.print(printable(f"mlgrade: note: {note}"), markup=False)
    try:
        summary = grade_class(assignment, Path(args.submissions), Path(args.output), jobs=args.jobs,
                              force=args.force, timeout=args.timeout, console=console,
                              run=cluster.run if cluster else None)
    except ExportError as exc:
        console.print(printable(f"mlgrade: {exc}"), markup=False)
        return 2
    finally:
        if cluster is not None:
            cluster.close()
    console.print(f"graded {summary.graded}, skipped {summary.skipped} unchanged, {summary.failed} failed; "
                  f"{summary.seconds:.1f} s. Wrote {args.output}/scores.csv and {args.output}/report.html")
    for student, reason in sorted(summary.failures.items()):
        console.print(printable(f"  {student}: no score: {reason}"), markup=False)
    for text in summary.errors:
        console.print(printable(f"  problem: {text}"), markup=False)
    # 3: some student got no score (see their grading.log); 1: a file could not be written
    return EXIT_NOT_GRADED if summary.failed else (1 if summary.errors else 0)


def cmd_certificates(args) -> int:
    from mlgrade.certificates import write_certificates

    try:
        paths = write_certificates(Path(args.folder), days=args.days)
    except FileExistsError as exc:
        console.print(printable(f"mlgrade: {exc}"), markup=False)
        return 2
    folder = args.folder
    console.print(printable(
        f"wrote {', '.join(p.name for p in paths.values())} to {folder} (valid {args.days} days; the CA's key was "
        f"not kept). Copy ca.pem to every host, scheduler*.pem to the scheduler, worker*.pem to each worker host, and "
        f"keep client*.pem; then:\n"
        f"  dask scheduler --tls-ca-file {folder}/ca.pem --tls-cert {folder}/scheduler.pem "
        f"--tls-key {folder}/scheduler-key.pem --port 8786\n"
        f"  dask worker tls://SCHEDULER:8786 --tls-ca-file {folder}/ca.pem --tls-cert {folder}/worker.pem "
        f"--tls-key {folder}/worker-key.pem --nthreads 1 --preload mlgrade.cluster\n"
        f"  mlgrade grade ASSIGNMENT SUBMISSIONS --scheduler tls://SCHEDULER:8786 --tls-ca-file {folder}/ca.pem "
        f"--tls-cert {folder}/client.pem --tls-key {folder}/client-key.pem"), markup=False, soft_wrap=True)
    return 0


def _unsafe_option(p) -> None:
    p.add_argument("--unsafe-no-isolation", action="store_true",
                   help="grade even where the worker can read the hidden tests and the reference (not root, and "
                        "the kernel allows no user namespace): student code can then read them and copy the "
                        "expected answers. Only for code you trust; without it such a grading gives no score")


def _course_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--course", metavar="DIR",
                        help=f"the course folder (default: ${COURSE_ENV}, else the first folder from here upward "
                             f"that holds {COURSE_FILE})")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlgrade", description="Sandboxed autograder for ML homework.",
        epilog=f"A course is a folder with {COURSE_FILE} at its root (mlgrade new course DIR); commands find it "
               "from the current folder upward, or take --course DIR.")
    sub = parser.add_subparsers(dest="command", required=True)
    in_course = [_course_parent()]
    p = sub.add_parser("run", parents=in_course, help="grade one submission folder and write results.json")
    p.add_argument("assignment")
    p.add_argument("submission")
    p.add_argument("--results", default="results.json", help="where to write results.json (default ./results.json)")
    p.add_argument("-v", "--verbose", action="store_true", help="show failure messages and pytest's log")
    _unsafe_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", parents=in_course, help="student self-check: public checks on your files")
    p.add_argument("assignment")
    p.add_argument("files", nargs="*", help="your files (default: the assignment's files in this folder)")
    p.add_argument("--page", nargs="?", const="", metavar="PATH",
                   help="also write a self-check page (one HTML file, works offline): the sheet's figures drawn from "
                        "your code beside the reference's (default PATH: ./<assignment>-selfcheck.html)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("selfcheck-images", parents=in_course,
                       help="draw the self-check's figures from the reference: assignments/<id>/selfcheck/*.png")
    p.add_argument("assignment")
    p.add_argument("-o", "--output", help="output folder (default assignments/<id>/selfcheck)")
    p.set_defaults(func=cmd_selfcheck_images)
    p = sub.add_parser("validate", parents=in_course, help="reference 100%%, template 0%%, every mutant caught")
    p.add_argument("assignment")
    p.add_argument("--only", help="run only mutants whose name contains this")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="grading processes (default: one per CPU; validate is the instructor's own run)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("list", parents=in_course, help="assignments and their exercises")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("new", help="make a course folder, or an assignment in a course (a working scaffold)")
    p.add_argument("what", choices=["course", "assignment"])
    p.add_argument("name", help="course: the folder to make; assignment: its id (such as hw1)")
    p.add_argument("--course", metavar="DIR", help="for an assignment: the course (default: found from here upward)")
    p.add_argument("--title", help="the course's name or the assignment's title")
    p.set_defaults(func=cmd_new)
    p = sub.add_parser("setup-worker", help="as root: create the worker user and let it run this Python")
    p.set_defaults(func=cmd_setup_worker)
    p = sub.add_parser("build", parents=in_course, help="the Gradescope autograder zip, or with --student the student bundle")
    p.add_argument("assignment")
    p.add_argument("-o", "--output", default="dist", help="output folder (default ./dist)")
    p.add_argument("--student", action="store_true", help="build the student bundle instead")
    p.add_argument("--wheelhouse", help="folder of wheels to ship in the zip (setup.sh installs from it, offline)")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("template", parents=in_course, help="generate the student template from the reference's marked solution")
    p.add_argument("assignment")
    p.add_argument("-o", "--output", help="output folder (default student_template/<id>)")
    p.add_argument("--check", action="store_true", help="only say whether the committed template is up to date")
    p.set_defaults(func=cmd_template)
    p = sub.add_parser("grade", parents=in_course, help="grade a whole class: a folder of submissions or Gradescope's export zip")
    p.add_argument("assignment")
    p.add_argument("submissions", help="folder with one folder or file per student, or Gradescope's export zip")
    p.add_argument("-j", "--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="grading processes")
    p.add_argument("-o", "--output", default="out", help="output folder (default ./out)")
    p.add_argument("--force", action="store_true", help="regrade students whose submission and graders are unchanged")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for one submission before its process is killed")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on the Dask cluster of this scheduler (tls://host:8786; workers started with "
                        "`dask worker ADDRESS --nthreads 1 --preload mlgrade.cluster` and their certificates) instead "
                        "of -j local processes; plain tcp:// only on the loopback")
    # the names of `dask scheduler` and `dask worker`; unset, Dask's config (distributed.comm.tls) is used
    p.add_argument("--tls-ca-file", metavar="PEM", help="the cluster's CA certificate (`mlgrade certificates`: ca.pem)")
    p.add_argument("--tls-cert", metavar="PEM", help="this client's certificate (client.pem)")
    p.add_argument("--tls-key", metavar="PEM", help="this client's private key (client-key.pem)")
    p.add_argument("--unsafe-plain-tcp", action="store_true",
                   help="allow a plain tcp:// scheduler that is not on the loopback. Everything then travels in clear "
                        "text and unauthenticated: anyone who can reach the scheduler's port can run any code on the "
                        "workers (as root), receive the hidden graders, the reference and every submission, and "
                        "return forged grades. Only on a private network where you trust every host")
    _unsafe_option(p)
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("certificates", help="make a CA and the TLS certificates of a grading cluster "
                                            "(scheduler, workers, client)")
    p.add_argument("folder", help="where to write ca.pem and <role>.pem, <role>-key.pem (created 0700)")
    p.add_argument("--days", type=int, default=365, help="how long they are valid (default 365)")
    p.set_defaults(func=cmd_certificates)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "unsafe_no_isolation", False):
        from mlgrade.runner import UNSAFE_ENV

        os.environ[UNSAFE_ENV] = "1"  # read by every grading, in batch pool processes too
    try:
        return args.func(args)
    except (CourseError, UnknownAssignment, FileNotFoundError) as exc:
        console.print(f"[red]mlgrade: {escape(str(exc))}[/]")
        return 2


if __name__ == "__main__":
    sys.exit(main())

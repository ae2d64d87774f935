#!/usr/bin/python3
"""Check what LAVA recorded from the guest's console in a `lava-run` log, or print it.

    lava-results.py check LOG [SUITE]   exit 1 unless every `vmprobe: result` line the guest
                                        printed is a passing test case of SUITE with the same
                                        measurement and units, and the job and monitor passed
    lava-results.py table LOG [SUITE]   the recorded cases as a Markdown table

LOG is lava-run's own log (one YAML mapping per line, as lava-run writes it to stderr without a
server). SUITE is the monitor's name in the job (default vmprobe-guest).
"""
import re
import sys

import yaml

RESULT = re.compile(r"^vmprobe: result (\S+) (\S+) (\S+)$")


def entries(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            # lava-run's own lines are flow mappings; anything else on its stderr is not.
            if line.startswith("{"):
                yield yaml.safe_load(line)


def read(path, suite):
    """(the guest's result lines as (id, value, unit), LAVA's cases of `suite`, other results)."""
    printed, cases, lava = [], [], {}
    for e in entries(path):
        msg = e.get("msg")
        if e.get("lvl") == "target" and isinstance(msg, str):
            m = RESULT.match(msg.strip())
            if m:
                printed.append(m.groups())
        elif e.get("lvl") == "results" and isinstance(msg, dict):
            if msg.get("definition") == suite:
                cases.append(msg)
            elif msg.get("definition") == "lava":
                lava[msg["case"]] = msg
    return printed, cases, lava


def lava_case_name(test_case_id):
    """The case name LAVA's monitor derives from an id: lowercase, runs of non-word
    characters (`-`, `.`) as one `_`."""
    return re.sub(r"\W+", "_", test_case_id.strip().lower())


def check(path, suite):
    printed, cases, lava = read(path, suite)
    problems = []
    if not printed:
        problems.append("the guest printed no `vmprobe: result` line")
    if len(cases) != len(printed):
        problems.append(f"{len(printed)} result lines printed, {len(cases)} cases recorded")
    for (tid, value, unit), case in zip(printed, cases):
        want = {
            "case": lava_case_name(tid),
            "result": "pass",
            "units": unit,
            "test_case_id": tid,
        }
        got = {
            "case": case.get("case"),
            "result": case.get("result"),
            "units": case.get("units"),
            "test_case_id": case.get("extra", {}).get("test_case_id"),
        }
        if got != want:
            problems.append(f"{tid}: recorded {got}, expected {want}")
        elif float(case["measurement"]) != float(value):
            problems.append(f"{tid}: measurement {case['measurement']} for {value}")
    monitor = lava.get("lava-test-monitor", {})
    if monitor.get("extra", {}).get("status") != "passed":
        problems.append(f"the monitor did not find its end string: {monitor}")
    job = lava.get("job", {})
    if job.get("result") != "pass":
        problems.append(f"the job failed: {job.get('error_msg')}")
    for p in problems:
        print(f"lava-results: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"lava-results: {len(cases)} test cases of {suite} recorded as printed; job passed")
    return 0


def table(path, suite):
    _, cases, _ = read(path, suite)
    print("| LAVA case | guest's id | measurement | units |")
    print("|---|---|---:|---|")
    for c in cases:
        m = float(c["measurement"])
        shown = f"{m:g}" if m < 1e6 else f"{m:.0f}"
        print(f"| {c['case']} | {c['extra']['test_case_id']} | {shown} | {c['units']} |")
    return 0


def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in ("check", "table"):
        print(__doc__, file=sys.stderr)
        return 2
    suite = argv[3] if len(argv) == 4 else "vmprobe-guest"
    return (check if argv[1] == "check" else table)(argv[2], suite)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

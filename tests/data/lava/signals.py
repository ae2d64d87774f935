#!/usr/bin/python3
"""Reads a LAVA test shell's output on stdin and prints, as JSON, the test cases LAVA's own
dispatcher code records from it: the signal pattern of TestShellAction, handle_testcase,
SignalMatch with the default fixups, and the measurement check of signal_test_case.
Needs Debian's lava-dispatcher (python3-lava-dispatcher). Exits 1 on what LAVA refuses."""
import decimal
import json
import re
import sys

from lava_dispatcher.actions.test.shell import (
    PatternFixup,
    SignalMatch,
    TestShellAction,
    handle_testcase,
)

action = TestShellAction()
action._reset_patterns()
signal = re.compile(action.patterns["signal"])
fixup = PatternFixup(testdef=None, count=0).fixupdict()
cases = []
for m in signal.finditer(sys.stdin.read()):
    name, params = m.groups()
    if name != "TESTCASE":
        continue
    res = SignalMatch().match(handle_testcase(params.split()), fixupdict=fixup)
    if " " in res["test_case_id"].strip():
        sys.exit("LAVA skips a test case id with a space: %r" % res["test_case_id"])
    case = {"case": res["test_case_id"], "result": res["result"]}
    if "measurement" in res:
        case["measurement"] = float(decimal.Decimal(res["measurement"]))
        if "units" in res:
            case["units"] = res["units"]
    cases.append(case)
json.dump(cases, sys.stdout)

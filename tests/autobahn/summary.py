"""Prints one line per Autobahn case from a kosoku report: `case behavior behaviorClose`.

usage: python3 summary.py reports/clients/index.json
"""
import json
import sys


def key(case):
    return [int(p) for p in case.split(".")]


index = json.load(open(sys.argv[1]))
for agent, cases in index.items():
    for case in sorted(cases, key=key):
        r = cases[case]
        print(case, r["behavior"], r["behaviorClose"])

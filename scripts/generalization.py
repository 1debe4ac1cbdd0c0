#!/usr/bin/env python3
"""Leave-one-project-out check of the analyzer's rules on the development logs.

usage: python3 scripts/generalization.py PIPEGUARD_BIN [LOGS_DIR] [--baseline]

LOGS_DIR (default ../shared/fixtures/logs) holds `pairs/<project>__pair_N/failed.log` (GitHub
Actions, 27 projects), `logchunks/<owner@repo>__<id>/log.txt` (Travis, 80 projects) and
`veloren/<id>/log.txt` (one GitLab project). Each log goes through `pipeguard analyze --format
json` (the pairs with their green run as `--baseline` when asked); the rule that decided is the
diagnosis' `signature` (a knowledge-base id, or `tool:<entry>` for the tool and word tables).

A decision "rests on a one-project rule" when every log that rule decided comes from the log's
own project: left out of the development set, that project would have met a rule nobody else's
logs exercise. Prints the share of decisions (not `unknown`) resting on such rules, per data
set and overall, and lists those rules with their projects, so each can be checked against the
tool's own wording. With `categories.jsonl` present it also says how many of them are right.
"""
import collections, json, os, subprocess, sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
baseline = "--baseline" in sys.argv
if not args:
    sys.exit(__doc__)
binary = args[0]
root = args[1] if len(args) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "logs")


def cases():
    pairs = os.path.join(root, "pairs")
    for c in sorted(os.listdir(pairs)) if os.path.isdir(pairs) else []:
        log = os.path.join(pairs, c, "failed.log")
        if os.path.isfile(log):
            green = os.path.join(pairs, c, "green.log")
            yield "pairs", c, c.split("__pair")[0], log, green if baseline else None
    for ds in ("logchunks", "veloren"):
        d = os.path.join(root, ds)
        for c in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            log = os.path.join(d, c, "log.txt")
            if os.path.isfile(log):
                yield ds, c, (c.split("__")[0] if ds == "logchunks" else ds), log, None


labels = {}
cat_file = os.path.join(root, "categories.jsonl")
if os.path.isfile(cat_file):
    for line in open(cat_file):
        r = json.loads(line)
        if r.get("confidence") in ("high", "medium"):
            labels[r["case"]] = r["category"]

rows = []
for ds, case, project, log, green in cases():
    cmd = [binary, "analyze", "--format", "json", log] + (["--baseline", green] if green else [])
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        print(f"  {ds}/{case}: no JSON ({r.stderr[:200]!r})", file=sys.stderr)
        continue
    rows.append((ds, case, project, out.get("category", "unknown"), out.get("signature")))

projects_of = collections.defaultdict(set)
logs_of = collections.Counter()
for ds, case, project, cat, rule in rows:
    if rule and cat != "unknown":
        projects_of[rule].add((ds, project))
        logs_of[rule] += 1

per = collections.defaultdict(lambda: [0, 0, 0, 0])  # decided, one-project, right, labeled
lonely = collections.defaultdict(list)
for ds, case, project, cat, rule in rows:
    if cat == "unknown" or not rule:
        continue
    solo = projects_of[rule] == {(ds, project)}
    for key in (ds, "all"):
        p = per[key]
        p[0] += 1
        if solo:
            p[1] += 1
            if case in labels:
                p[3] += 1
                p[2] += labels[case] == cat
    if solo:
        lonely[rule].append(f"{case} -> {cat}" + (f" (label {labels[case]})" if case in labels else ""))

print(f"logs analysed: {len(rows)}; baseline for the pairs: {'green run' if baseline else 'none'}")
for key in ("pairs", "logchunks", "veloren", "all"):
    d, s, right, lab = per[key]
    if d:
        extra = f"; labeled {lab}, right {right}" if lab else ""
        print(f"{key}: {s}/{d} decisions ({s / d:.0%}) rest on a rule only their own project's logs trigger{extra}")
print(f"rules deciding at least one log: {len(projects_of)}; of them one-project: {len(lonely)}; "
      f"one log only: {sum(1 for r in projects_of if logs_of[r] == 1)}")
for rule in sorted(lonely):
    print(f"  {rule}: {len(lonely[rule])} log(s)")
    for x in lonely[rule][:4]:
        print(f"      {x}")

#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/{webhook,analyzer,safety}.

Seeds come from the repository itself (platform fixtures, the trace file, the safety tests)
and, when ../shared/fixtures is beside the repository, from its GitHub, GitLab and Jenkins
payloads. The output is committed; run this again only to refresh it.
"""
import hashlib
import json
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "fuzz" / "corpus"
SHARED = REPO.parent / "shared" / "fixtures"

# Byte 0 of a webhook seed: the platform's index in pipeguard_platforms::registry::MODULES.
PLATFORMS = ["github", "gitlab", "jenkins", "circleci", "buildbot", "buildkite", "azure",
             "teamcity", "ansible", "generic"]


def write(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def delivery(platform, headers, body, query=None, secret=None):
    lines = [f"{k}: {v}" for k, v in headers.items()]
    if query:
        lines.append("?" + query)
    if secret:
        lines.append("!" + secret)
    head = "".join(line + "\n" for line in lines) + "\n"
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return bytes([PLATFORMS.index(platform)]) + head.encode() + body


def read(path):
    return path.read_bytes() if path.exists() else None


def webhook_seeds():
    ct = {"content-type": "application/json"}
    fixtures = REPO / "crates" / "platforms" / "tests" / "fixtures"
    for platform, event in [("buildkite", None), ("teamcity", None), ("azure", None)]:
        for f in sorted((fixtures / platform).glob("*.json")):
            h = dict(ct)
            if platform == "buildkite":
                body = json.loads(f.read_bytes())
                h["x-buildkite-event"] = body.get("event", "build.finished")
                h["x-buildkite-token"] = "s3cret"
            yield delivery(platform, h, f.read_bytes(), secret="s3cret")
    gh = SHARED / "github" / "octokit-webhooks"
    for rel, event in [("workflow_run/completed.payload.json", "workflow_run"),
                       ("workflow_job/completed.failure.with-organization.payload.json",
                        "workflow_job"),
                       ("check_run/completed.payload.json", "check_run"),
                       ("ping/payload.json", "ping")]:
        body = read(gh / rel)
        if body:
            h = dict(ct, **{"x-github-event": event, "x-github-delivery": "d-1",
                            "x-hub-signature-256": "sha256=" + "0" * 64})
            yield delivery("github", h, body, secret="s3cret")
    gl = SHARED / "gitlab" / "go-playground-webhooks"
    for rel, event in [("pipeline-event.json", "Pipeline Hook"), ("job-event.json", "Job Hook"),
                       ("build-event.json", "Job Hook")]:
        body = read(gl / rel)
        if body:
            h = dict(ct, **{"x-gitlab-event": event, "x-gitlab-token": "s3cret",
                            "x-gitlab-event-uuid": "u-1"})
            yield delivery("gitlab", h, body, secret="s3cret")
    body = read(SHARED / "jenkins" / "notification-plugin" /
                "help-projectConfig.html__example.json")
    if body:
        yield delivery("jenkins", dict(ct, **{"x-pipeguard-token": "s3cret"}), body,
                       query="token=s3cret", secret="s3cret")
    status = "failed"
    yield delivery("circleci", dict(ct, **{"circleci-signature": "v1=" + "0" * 64}), {
        "id": "3888f21b", "type": "workflow-completed", "happened_at": "2026-11-23T10:04:00Z",
        "project": {"id": "84996744", "name": "api", "slug": "gh/acme/api"},
        "organization": {"id": "f22b6566", "name": "acme"},
        "workflow": {"id": "fda08377", "name": "build-test", "status": status,
                     "created_at": "2026-11-23T10:00:00Z",
                     "stopped_at": "2026-11-23T10:04:00Z"},
        "pipeline": {"id": "1285fe1d", "number": 130, "created_at": "2026-11-23T09:59:59Z",
                     "vcs": {"provider_name": "github", "revision": "1dc6aa69",
                             "branch": "main"}},
        "job": {"id": "8bd26f7b", "name": "test", "number": 136, "status": status}},
        secret="s3cret")
    yield delivery("buildbot", ct, {
        "buildid": 1, "number": 1, "builderid": 1, "buildrequestid": 1, "complete": True,
        "started_at": 1795435090, "complete_at": 1795435092, "results": 2,
        "state_string": "failed", "properties": {"revision": ["abc123", "Build"]},
        "buildset": {"bsid": 1, "rebuilt_buildid": None, "sourcestamps": []},
        "builder": {"builderid": 1, "name": "flaky"}, "url": "http://127.0.0.1:8010/#/"})
    yield delivery("ansible", dict(ct, **{"x-pipeguard-token": "s3cret"}), {
        "playbook": "site.yml", "host": "web-1", "task": "install nginx", "module": "apt",
        "msg": "No space left on device", "stderr": "E: write error", "rc": 100,
        "unreachable": False}, secret="s3cret")
    yield delivery("generic", dict(ct, **{"x-pipeguard-token": "s3cret"}), {
        "source": "cron", "job_name": "nightly", "build_number": 7, "stage": "test",
        "error_message": "connection reset by peer", "target_hosts": ["db-1"],
        "log": "npm ERR! network ECONNRESET", "repository": "acme/api"}, secret="s3cret")


def analyzer_seeds():
    traces = (REPO / "traces" / "default.jsonl").read_text().splitlines()
    seen = set()
    for line in traces:
        t = json.loads(line)
        if t["category"] not in seen:
            seen.add(t["category"])
            yield t["log"].encode()


def safety_seeds():
    tests = REPO / "crates" / "core" / "tests"
    pattern = re.compile(r'^\s*\((r#?"(?:[^"\\]|\\.)*"#?|"(?:[^"\\]|\\.)*"),\s*(?:Refused|High)')
    for f in ["safety_destructive.rs", "safety_everyday.rs"]:
        for line in (tests / f).read_text().splitlines()[:400]:
            m = pattern.match(line)
            if not m:
                continue
            lit = m.group(1)
            if lit.startswith("r"):
                text = lit.lstrip("r").strip("#")[1:-1]
            else:
                text = json.loads(lit) if "\\x" not in lit else None
            if text:
                yield text.encode()
    yield b"kubectl exec pod -- rm -rf /"
    yield b"echo / | xargs rm -rf\nls -la /tmp"
    yield b"cat <<EOF > run.sh\nrm -rf /\nEOF\nsh run.sh"
    yield b"ansible all -a 'rm -rf /'\0--become"


for target, seeds in [("webhook", webhook_seeds()), ("analyzer", analyzer_seeds()),
                      ("safety", safety_seeds())]:
    n = 0
    for s in seeds:
        write(target, s)
        n += 1
    print(f"{target}: {n} seeds")

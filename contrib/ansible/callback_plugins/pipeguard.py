# pipeguard callback plugin: reports task results to pipeguard.
#
# Enable it with Ansible's standard plugin settings, for example
#   ANSIBLE_CALLBACK_PLUGINS=/path/to/contrib/ansible/callback_plugins
#   ANSIBLE_CALLBACKS_ENABLED=pipeguard
# It writes one JSON object per line to $PIPEGUARD_EVENTS_FILE (used by `pipeguard ansible`)
# and, when $PIPEGUARD_URL is set, POSTs every failed or unreachable task to
# $PIPEGUARD_URL/webhooks/ansible of a running pipeguard server (with
# `Authorization: Bearer $PIPEGUARD_TOKEN` when that is set). Reporting never fails the play.
from __future__ import annotations

DOCUMENTATION = """
    name: pipeguard
    type: notification
    short_description: report failed tasks and host facts to pipeguard
    description:
      - Writes JSON events to the file named by PIPEGUARD_EVENTS_FILE.
      - POSTs failed tasks to PIPEGUARD_URL/webhooks/ansible when PIPEGUARD_URL is set.
    requirements:
      - enable in configuration
"""

import json
import os
import threading
import urllib.request

from ansible.plugins.callback import CallbackBase

SETUP_ACTIONS = {
    "setup",
    "gather_facts",
    "ansible.builtin.setup",
    "ansible.builtin.gather_facts",
    "ansible.legacy.setup",
    "ansible.legacy.gather_facts",
}
MAX_TEXT = 16 * 1024


def _text(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(v) for v in value)
    value = str(value)
    if len(value) > MAX_TEXT:
        # The end of an output explains a failure better than its start.
        value = value[-MAX_TEXT:]
    return value


def _result(result):
    # ansible-core 2.19 has `result.result`; older versions only `_result`.
    r = getattr(result, "result", None)
    if r is None or not hasattr(r, "get"):
        r = getattr(result, "_result", {})
    return r


def _host(result):
    h = getattr(result, "host", None) or getattr(result, "_host", None)
    return h.get_name() if h is not None else ""


def _task(result):
    return getattr(result, "task", None) or getattr(result, "_task", None)


def summarize_facts(facts):
    """The host facts pipeguard chooses fix commands by."""
    out = {}
    for key in (
        "os_family",
        "distribution",
        "distribution_version",
        "distribution_release",
        "pkg_mgr",
        "service_mgr",
        "architecture",
        "memtotal_mb",
        "memfree_mb",
        "hostname",
        "fqdn",
        "kernel",
    ):
        value = facts.get("ansible_" + key, facts.get(key))
        if value is not None:
            out[key] = value
    python = facts.get("ansible_python") or {}
    if isinstance(python, dict) and python.get("executable"):
        out["python"] = python["executable"]
    mounts = facts.get("ansible_mounts") or []
    root = None
    for m in mounts:
        if isinstance(m, dict) and m.get("mount") == "/":
            root = m
    if root is None and mounts and isinstance(mounts[0], dict):
        root = mounts[0]
    if root is not None:
        if root.get("size_available") is not None:
            out["disk_free_mb"] = int(root["size_available"]) // (1024 * 1024)
        if root.get("size_total") is not None:
            out["disk_total_mb"] = int(root["size_total"]) // (1024 * 1024)
        if root.get("inode_available") is not None:
            out["inodes_free"] = int(root["inode_available"])
        if root.get("inode_total") is not None:
            out["inodes_total"] = int(root["inode_total"])
    return out


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "pipeguard"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("PIPEGUARD_EVENTS_FILE")
        self._url = os.environ.get("PIPEGUARD_URL", "").rstrip("/")
        self._token = os.environ.get("PIPEGUARD_TOKEN", "")
        self._playbook = ""
        self._play = ""
        self._facts = {}
        self._lock = threading.Lock()
        self._posts = []

    # -- output -----------------------------------------------------------------------
    def _emit(self, event):
        if not self._path:
            return
        line = json.dumps(event, default=str, ensure_ascii=False)
        with self._lock:
            try:
                with open(self._path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as e:
                self._display.warning("pipeguard: cannot write %s: %s" % (self._path, e))

    def _post(self, payload):
        if not self._url:
            return
        body = json.dumps(payload, default=str).encode("utf-8")
        req = urllib.request.Request(
            self._url + "/webhooks/ansible",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "pipeguard-ansible-callback"},
        )
        if self._token:
            req.add_header("Authorization", "Bearer " + self._token)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
        except Exception as e:  # a reporting failure must never fail the play
            self._display.warning("pipeguard: could not report to %s: %s" % (self._url, e))

    # -- events -----------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self._playbook = getattr(playbook, "_file_name", "") or ""
        self._emit({"event": "playbook_start", "playbook": self._playbook})

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()
        self._emit({"event": "play_start", "play": self._play})

    def _failure(self, result, unreachable, ignored=False):
        r = _result(result)
        task = _task(result)
        host = _host(result)
        module = getattr(task, "action", "") if task is not None else ""
        args = {}
        if task is not None:
            try:
                args = dict(task.args or {})
            except Exception:
                args = {}
        exception = r.get("exception")
        event = {
            "event": "unreachable" if unreachable else "failed",
            "playbook": self._playbook,
            "play": self._play,
            "host": host,
            "task": task.get_name() if task is not None else "",
            "module": module,
            "msg": _text(r.get("msg")),
            "stdout": _text(r.get("stdout") or r.get("module_stdout")),
            "stderr": _text(r.get("stderr") or r.get("module_stderr")),
            "rc": r.get("rc"),
            "unreachable": bool(unreachable),
            "ignored": bool(ignored),
            "args": args,
            "become_user": getattr(task, "become_user", None) if task is not None else None,
            "become": bool(getattr(task, "become", False)) if task is not None else False,
            "task_path": task.get_path() if task is not None and hasattr(task, "get_path") else None,
        }
        if exception:
            event["exception"] = _text(exception)
        if isinstance(r.get("results"), list):
            # A loop: the failed items carry the messages.
            msgs = [_text(i.get("msg")) for i in r["results"] if isinstance(i, dict) and i.get("failed")]
            if msgs and not event["msg"].strip():
                event["msg"] = "\n".join(msgs)
            errs = [_text(i.get("stderr")) for i in r["results"] if isinstance(i, dict) and i.get("failed")]
            if errs and not event["stderr"]:
                event["stderr"] = "\n".join(errs)
        self._emit(event)
        if not ignored:
            payload = {k: event[k] for k in ("playbook", "host", "task", "module", "msg", "stdout", "stderr", "rc", "unreachable")}
            if host in self._facts:
                payload["facts"] = self._facts[host]
            self._post(payload)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._failure(result, unreachable=False, ignored=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._failure(result, unreachable=True)

    def v2_runner_on_ok(self, result):
        r = _result(result)
        task = _task(result)
        host = _host(result)
        module = getattr(task, "action", "") if task is not None else ""
        if module in SETUP_ACTIONS and isinstance(r.get("ansible_facts"), dict):
            facts = summarize_facts(r["ansible_facts"])
            if facts:
                self._facts[host] = facts
                self._emit({"event": "facts", "host": host, "facts": facts})
        event = {
            "event": "ok",
            "host": host,
            "task": task.get_name() if task is not None else "",
            "module": module,
            "changed": bool(r.get("changed")),
        }
        if "rc" in r:
            event["rc"] = r.get("rc")
        if r.get("stdout"):
            event["stdout"] = _text(r.get("stdout"))
        stat = r.get("stat")
        if isinstance(stat, dict):
            event["stat"] = {k: stat.get(k) for k in ("exists", "isdir", "mode", "uid", "gid", "pw_name", "gr_name", "size", "path") if k in stat}
        self._emit(event)

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for h in sorted(stats.processed.keys()):
            hosts[h] = stats.summarize(h)
        self._emit({"event": "stats", "hosts": hosts})

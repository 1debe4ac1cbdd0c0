// Live session changes: the server-sent events of /api/v1/events, read with fetch() because
// EventSource cannot send the bearer header (and a token in the URL would end up in logs).

import { authHeaders } from "./api.js";

const listeners = new Set();
let controller = null;
let onStateChange = () => {};

/** Calls fn(session) for every session change; returns a function that stops it. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** fn("on" | "off") when the stream connects or is lost. */
export function onState(fn) {
  onStateChange = fn;
}

export function start() {
  stop();
  controller = new AbortController();
  // A little before now: a change made while the first list loads is not missed (a change
  // seen twice only updates its row again).
  follow(controller.signal, Date.now() - 10_000);
}

export function stop() {
  controller?.abort();
  controller = null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function follow(signal, since) {
  let cursor = since;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const resp = await fetch(`/api/v1/events?since=${cursor}`, {
        headers: { ...authHeaders(), Accept: "text/event-stream" },
        signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (resp.status === 401) {
        window.dispatchEvent(new CustomEvent("pipeguard:unauthorized"));
        return;
      }
      if (!resp.ok) throw new Error(`events: ${resp.status}`);
      onStateChange("on");
      delay = 500;
      // The server ends each stream after a while; the loop reconnects from the last id.
      await readEvents(resp.body, (ev) => {
        if (ev.id) cursor = ev.id;
        dispatch(ev);
      });
    } catch (e) {
      if (signal.aborted) return;
      onStateChange("off");
      await sleep(delay);
      delay = Math.min(delay * 2, 15_000);
    }
  }
}

function dispatch(ev) {
  if (ev.event === "error") throw new Error("events: the server reported an error");
  if (ev.event !== "session") return;
  const session = JSON.parse(ev.data);
  for (const fn of listeners) {
    try {
      fn(session);
    } catch (e) {
      console.error("a live view failed on a change", e);
    }
  }
}

/** Parses a text/event-stream body, calling onEvent({event, data, id}) per event. */
export async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = parseBlock(block);
      if (ev) onEvent(ev);
    }
  }
}

function parseBlock(block) {
  const ev = { event: "message", data: "", id: null };
  let hasData = false;
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue; // comments are keep-alives
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") ev.event = value;
    else if (field === "id") ev.id = value;
    else if (field === "data") {
      ev.data += (hasData ? "\n" : "") + value;
      hasData = true;
    }
  }
  return hasData ? ev : null;
}

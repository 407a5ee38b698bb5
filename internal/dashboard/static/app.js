// Slipway dashboard: the live log tail of a job page. Without this script
// the page still shows every line that existed when it was rendered.
"use strict";

(function () {
  const log = document.getElementById("log");
  if (!log) return;
  const id = log.dataset.job;
  let after = Number(log.dataset.after || 0);
  const startedTerminal = isTerminal(log.dataset.state);
  const stateEl = document.getElementById("state");
  const tail = document.getElementById("tail");

  function isTerminal(s) {
    return ["finished", "failed", "stopped", "preempted", "canceled"].includes(s);
  }

  function append(line) {
    const span = document.createElement("span");
    span.className = "l-" + line.stream;
    span.textContent = (line.stream === "slipway" ? "==> " : "") + line.text + "\n";
    log.appendChild(span);
  }

  function setState(s) {
    if (!stateEl || !s || stateEl.textContent === s) return;
    stateEl.textContent = s;
    stateEl.className = "state s-" + s;
  }

  async function poll() {
    let failures = 0;
    for (;;) {
      let body;
      try {
        const resp = await fetch("/v1/jobs/" + encodeURIComponent(id) + "/logs?after=" + after + "&wait=20s",
          { headers: { Accept: "application/json" } });
        if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
        body = await resp.json();
        failures = 0;
      } catch (e) {
        failures++;
        if (tail) tail.textContent = "Log tail interrupted (" + e.message + "); retrying…";
        await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 10000)));
        continue;
      }
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      for (const line of body.lines || []) append(line);
      if (body.next) after = body.next;
      if (atBottom && (body.lines || []).length) window.scrollTo(0, document.body.scrollHeight);
      setState(body.state);
      if (isTerminal(body.state) && !(body.lines || []).length) {
        // The timeline, reason and artifacts changed too: offer them.
        if (tail) {
          tail.textContent = "The job has ended " + body.state + ". ";
          const a = document.createElement("a");
          a.href = window.location.pathname;
          a.textContent = "Reload for its timeline and artifacts.";
          tail.appendChild(a);
        }
        return;
      }
      if (tail) tail.textContent = "Following the log…";
    }
  }

  if (!startedTerminal) poll();
})();

// The dashboard's only script: it follows the log of a run that is not
// over (Server-Sent Events), appending each line as text, and reloads
// the page once the run ends so that its steps and state are final.
"use strict";
(function () {
  const log = document.getElementById("log");
  if (!log || !log.dataset.follow) return;
  const url = log.dataset.follow + "?after=" + encodeURIComponent(log.dataset.after || "0");
  const es = new EventSource(url);
  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const span = (cls, text) => {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  };
  es.addEventListener("log", (ev) => {
    const line = JSON.parse(ev.data);
    const follow = atBottom();
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    const row = document.createElement("div");
    row.className = "l " + (line.stream === "stderr" || line.stream === "system" ? line.stream : "stdout");
    const t = new Date(line.time);
    row.append(span("ts", t.toISOString().slice(11, 23)), span("step", line.step), span("text", line.text));
    log.append(row);
    if (follow) log.scrollTop = log.scrollHeight;
  });
  es.addEventListener("end", () => {
    es.close();
    const live = document.getElementById("live");
    if (live) {
      live.textContent = "ended";
      live.classList.add("over");
    }
    setTimeout(() => location.reload(), 600);
  });
})();

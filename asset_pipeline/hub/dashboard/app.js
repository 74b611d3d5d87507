// Live dashboard for the asset_pipeline hub. No build step: plain JS served as a static file.
// Connects to /ws/monitor, reconnects with exponential backoff and resumes after the last seq of the
// same hub process (hub_id). After a hub restart the hub answers with a gap snapshot, whose seq and
// hub_id replace the old ones. A snapshot holds only the most recent partitions; the others are
// fetched page by page from /api/partitions.
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);
  const state = { partitions: new Map(), runs: new Map(), spend: null, lastSeq: 0, hubId: null, gallery: [] };
  const MAX_ROWS = 60, MAX_GALLERY = 12, ACTIVE = new Set(["generating", "pending"]);
  let socket = null, attempt = 0, renderQueued = false;

  // Theme: the saved choice, else the system's.
  const root = document.documentElement;
  const saved = localStorage.getItem("theme");
  root.dataset.theme = saved || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  $("theme-toggle").addEventListener("click", () => {
    root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("theme", root.dataset.theme);
  });

  function withToken(path, extra = {}) {
    const query = new URLSearchParams(extra);
    if (token) query.set("token", token);
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }

  function connect() {
    setConnection("connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const extra = state.lastSeq > 0 ? { after_seq: String(state.lastSeq) } : {};
    if (state.lastSeq > 0 && state.hubId) extra.hub_id = state.hubId;
    socket = new WebSocket(`${scheme}//${location.host}${withToken("/ws/monitor", extra)}`);
    socket.onopen = () => { attempt = 0; setConnection("connected"); };
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = () => {
      const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setConnection("reconnecting", delay);
      setTimeout(connect, delay);
    };
  }

  function setConnection(mode, delay) {
    const badge = $("connection-status");
    badge.dataset.state = mode;
    badge.textContent = mode === "reconnecting" ? `reconnecting in ${(delay / 1000).toFixed(1)} s` : mode;
  }

  function handle(message) {
    // Only channel messages move the resume point: direct ones (connection, ping) are numbered
    // when sent, ahead of replayed messages that may still be on their way.
    if (typeof message.seq === "number" && (message.type === "progress" || message.type === "run_event")) {
      state.lastSeq = Math.max(state.lastSeq, message.seq);
    }
    switch (message.type) {
      case "snapshot": applySnapshot(message); break;
      case "progress": applyProgress(message); break;
      case "run_event": applyRunEvent(message); break;
      case "ping": socket.send(JSON.stringify({ type: "pong" })); return;
      case "error": console.warn("hub error", message.code, message.message); return;
      default: return;
    }
    queueRender();
  }

  function applySnapshot(message) {
    state.lastSeq = message.seq;  // a snapshot (after a restart too) is the new resume point
    state.hubId = message.hub_id || null;
    state.partitions = new Map((message.partitions || []).map((p) => [p.partition_key, p]));
    if ((message.partitions_total || 0) > state.partitions.size) fetchRest(message.hub_id);
    state.runs = new Map((message.runs || []).map((r) => [r.run_id, r]));
    state.spend = message.spend || state.spend;
    state.gallery = [...state.partitions.values()]
      .filter((p) => p.status === "completed" || p.status === "cached")
      .sort((a, b) => String(b.timestamp || "").localeCompare(String(a.timestamp || "")))
      .slice(0, MAX_GALLERY).map((p) => ({ key: p.partition_key, seq: message.seq }));
  }

  // The partitions a bounded snapshot left out; what live messages brought since is newer and kept.
  async function fetchRest(hubId) {
    let after = "";
    while (after !== null && state.hubId === hubId) {
      const response = await fetch(withToken("/api/partitions", { after, limit: "1000" }));
      if (!response.ok) return;
      const page = await response.json();
      for (const p of page.partitions) if (!state.partitions.has(p.partition_key)) state.partitions.set(p.partition_key, p);
      after = page.next_after;
      queueRender();
    }
  }

  function applyProgress(message) {
    const previous = state.partitions.get(message.partition_key) || {};
    state.partitions.set(message.partition_key, { ...previous, ...message });
    if (message.run_id) {
      const run = state.runs.get(message.run_id) || { run_id: message.run_id, status: "STARTED" };
      state.runs.set(message.run_id, { ...run, updated_at: message.timestamp });
    }
    if (message.status === "completed" || message.status === "cached") {
      if (state.spend && message.status === "completed" && message.cost_usd) {
        state.spend.spent_today_usd += message.cost_usd;
        state.spend.spent_total_usd += message.cost_usd;
      }
      addToGallery(message.partition_key, message.seq);
    }
  }

  function applyRunEvent(message) {
    const statuses = { PIPELINE_START: "STARTED", PIPELINE_SUCCESS: "SUCCESS", PIPELINE_FAILURE: "FAILURE",
                       PIPELINE_CANCELED: "CANCELED", PIPELINE_ENQUEUED: "QUEUED", PIPELINE_STARTING: "STARTING" };
    const run = state.runs.get(message.run_id) || { run_id: message.run_id };
    state.runs.set(message.run_id, { ...run, status: statuses[message.event_type] || run.status,
                                     job_name: message.job_name || run.job_name, updated_at: message.timestamp });
    if (message.event_type === "ASSET_MATERIALIZATION" && message.partition_key) {
      const previous = state.partitions.get(message.partition_key) || { partition_key: message.partition_key };
      state.partitions.set(message.partition_key, { ...previous, status: "completed", percentage: 100,
                                                    cost_usd: message.cost_usd ?? previous.cost_usd, timestamp: message.timestamp });
      addToGallery(message.partition_key, message.seq);
    }
  }

  function addToGallery(key, seq) {
    state.gallery = [{ key, seq }, ...state.gallery.filter((item) => item.key !== key)].slice(0, MAX_GALLERY);
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  const money = (value) => (typeof value === "number" ? `$${value.toFixed(value < 1 ? 4 : 2)}` : "–");
  const seconds = (value) => (typeof value === "number" ? (value >= 60 ? `${Math.round(value / 60)} min` : `${value.toFixed(1)} s`) : "");

  function render() {
    const partitions = [...state.partitions.values()];
    const counts = {};
    for (const p of partitions) counts[p.status] = (counts[p.status] || 0) + 1;
    $("counts").replaceChildren(...Object.entries(counts).sort().map(([status, n]) => {
      const div = document.createElement("div");
      div.innerHTML = `<dt></dt><dd></dd>`;
      div.querySelector("dt").textContent = status;
      div.querySelector("dd").textContent = n;
      return div;
    }));
    renderSpend();
    renderRuns();
    renderPartitions(partitions);
    renderGallery();
  }

  function renderSpend() {
    const spend = state.spend;
    if (!spend) return;
    $("spend-today").textContent = `${money(spend.spent_today_usd)} of ${money(spend.cap_daily_usd)}`;
    $("spend-total").textContent = `${money(spend.spent_total_usd)} of ${money(spend.cap_total_usd)}`;
    const share = (a, b) => `${Math.min(100, b > 0 ? (100 * a) / b : 0).toFixed(1)}%`;
    $("spend-today-bar").style.width = share(spend.spent_today_usd, spend.cap_daily_usd);
    $("spend-total-bar").style.width = share(spend.spent_total_usd, spend.cap_total_usd);
  }

  function renderRuns() {
    const runs = [...state.runs.values()].sort((a, b) => String(b.updated_at || "").localeCompare(String(a.updated_at || "")));
    $("runs").replaceChildren(...runs.slice(0, 20).map((run) => {
      const li = document.createElement("li");
      li.dataset.run = run.run_id;
      const id = document.createElement("code"); id.textContent = run.run_id.slice(0, 8);
      const status = document.createElement("span"); status.textContent = run.status || "–";
      li.append(id, status);
      return li;
    }));
  }

  function renderPartitions(partitions) {
    const rank = (p) => (p.status === "generating" ? 0 : p.status === "pending" ? 2 : 1);
    const shown = partitions
      .sort((a, b) => rank(a) - rank(b) || String(b.timestamp || "").localeCompare(String(a.timestamp || "")))
      .slice(0, MAX_ROWS);
    const active = partitions.filter((p) => ACTIVE.has(p.status)).length;
    $("progress-note").textContent = `${active} active, showing ${shown.length} of ${partitions.length}`;
    const list = $("partitions");
    const rows = new Map([...list.children].map((li) => [li.dataset.partition, li]));
    list.replaceChildren(...shown.map((p) => {
      const li = rows.get(p.partition_key) || newRow(p.partition_key);
      li.dataset.status = p.status;
      li.querySelector(".status").dataset.status = p.status;
      li.querySelector(".status").textContent = p.status;
      li.querySelector(".bar > span").style.width = `${Math.max(0, Math.min(100, p.percentage || 0))}%`;
      const step = p.total_steps ? `${p.stage ? p.stage + " " : ""}${p.current_step}/${p.total_steps}` : "";
      const eta = p.status === "generating" && typeof p.eta_s === "number" ? `ETA ${seconds(p.eta_s)}` : "";
      const cost = typeof p.cost_usd === "number" ? money(p.cost_usd) : "";
      li.querySelector(".detail").textContent = [step, eta, cost].filter(Boolean).join(" · ");
      li.title = p.message || "";
      return li;
    }));
  }

  function newRow(key) {
    const li = document.createElement("li");
    li.dataset.partition = key;
    li.innerHTML = `<span class="key"></span><span class="status"></span><div class="bar"><span></span></div><span class="detail"></span>`;
    li.querySelector(".key").textContent = key;
    return li;
  }

  function renderGallery() {
    $("gallery").replaceChildren(...state.gallery.map(({ key, seq }) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = key;
      img.dataset.partition = key;
      img.src = withToken(`/images/${encodeURIComponent(key)}`, { v: String(seq) });
      const caption = document.createElement("figcaption");
      caption.textContent = key;
      figure.append(img, caption);
      return figure;
    }));
  }

  connect();
})();

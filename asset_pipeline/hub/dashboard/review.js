// Review view of the asset_pipeline hub: go through generated images, approve or reject each.
// Plain JS served as a static file. Reads /api/reviews; writes POST /api/reviews/{key} with the
// sha256 of the image shown, so a verdict never lands on an image that replaced it (409 reloads).
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);
  const view = { filter: params.get("state") || "unreviewed", items: [], index: 0, busy: false };

  const root = document.documentElement;
  root.dataset.theme = localStorage.getItem("theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  $("theme-toggle").addEventListener("click", () => {
    root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("theme", root.dataset.theme);
  });
  if (token) $("dashboard-link").href = `/?token=${encodeURIComponent(token)}`;

  function withToken(path, extra = {}) {
    const query = new URLSearchParams(extra);
    if (token) query.set("token", token);
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const money = (v) => (typeof v === "number" ? `$${v.toFixed(v < 1 ? 4 : 2)}` : "–");

  async function load(keepKey) {
    const response = await fetch(withToken("/api/reviews", view.filter ? { state: view.filter } : {}), { headers });
    if (!response.ok) { message(`could not load reviews (${response.status})`); return; }
    const page = await response.json();
    view.items = page.items;
    for (const [state, n] of Object.entries(page.counts)) document.querySelector(`[data-count=${state}]`).textContent = n;
    document.querySelector("[data-count=all]").textContent = page.total;
    for (const button of document.querySelectorAll("#filters button")) button.setAttribute("aria-pressed", String(button.dataset.filter === view.filter));
    const found = keepKey ? view.items.findIndex((item) => item.partition_key === keepKey) : -1;
    view.index = found >= 0 ? found : Math.min(view.index, Math.max(0, view.items.length - 1));
    render();
  }

  function render() {
    const list = $("review-list");
    list.replaceChildren(...view.items.map((item, index) => {
      const li = document.createElement("li");
      li.dataset.partition = item.partition_key;
      li.dataset.state = item.state;
      li.setAttribute("aria-current", String(index === view.index));
      const key = document.createElement("span"); key.textContent = item.partition_key;
      const state = document.createElement("span"); state.className = "s"; state.textContent = item.state;
      li.append(key, state);
      li.addEventListener("click", () => { view.index = index; render(); });
      return li;
    }));
    $("list-note").textContent = `${view.items.length} shown`;
    const item = view.items[view.index];
    $("empty").hidden = Boolean(item);
    $("review-main").dataset.partition = item ? item.partition_key : "";
    if (!item) { $("review-image").removeAttribute("src"); $("history").replaceChildren(); return; }
    list.children[view.index]?.scrollIntoView({ block: "nearest" });
    const image = $("review-image");
    image.alt = item.partition_key;
    image.dataset.sha256 = item.sha256;
    image.src = withToken(`/review-objects/${item.sha256}`);
    $("review-key").textContent = item.partition_key;
    $("review-state").textContent = item.state;
    $("review-state").dataset.state = item.state;
    $("review-take").textContent = `take ${item.take}`;
    $("review-cost").textContent = money(item.cost_usd);
    $("review-due").hidden = !item.rerender_due;
    $("review-due").textContent = item.rerender_due ? `take ${item.next_take} is due: the next run renders a new image` : "";
    $("review-prompt").textContent = item.prompt || "";
    $("review-sha").textContent = item.sha256 || "";
    $("review-note").value = item.state === "unreviewed" ? "" : item.note || "";
    $("review-addition").value = "";
    loadHistory(item.partition_key);
  }

  async function loadHistory(key) {
    const response = await fetch(withToken(`/api/reviews/${encodeURIComponent(key)}/history`), { headers });
    if (!response.ok || view.items[view.index]?.partition_key !== key) return;
    const { history } = await response.json();
    $("history").replaceChildren(...history.map((entry) => {
      const li = document.createElement("li");
      li.dataset.sha256 = entry.sha256;
      li.dataset.take = String(entry.take);
      li.dataset.state = entry.state;
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.loading = "lazy"; img.alt = `${key} take ${entry.take}`;
      img.src = withToken(`/review-objects/${entry.sha256}`);
      const caption = document.createElement("figcaption");
      caption.textContent = `take ${entry.take}${entry.current ? " (current)" : ""} · ${entry.state}`;
      figure.append(img, caption);
      li.append(figure);
      return li;
    }));
  }

  function message(text) { $("review-message").textContent = text; }

  async function verdict(decision) {
    const item = view.items[view.index];
    if (!item || view.busy) return;
    view.busy = true;
    try {
      const body = { sha256: item.sha256, decision, note: $("review-note").value };
      const addition = $("review-addition").value.trim();
      if (decision === "rejected" && addition) body.prompt_addition = addition;
      const response = await fetch(withToken(`/api/reviews/${encodeURIComponent(item.partition_key)}`),
        { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        message(response.status === 401 ? "writing a review needs the hub token (open this page with ?token=...)" : `refused: ${answer.error || response.status}`);
        if (response.status === 409) await load(item.partition_key);
        return;
      }
      message(decision === "rejected" ? `rejected ${item.partition_key}: take ${answer.next_take} is due` : `approved ${item.partition_key}`);
      // Stay on the same position: in a filtered view the reviewed item leaves the list.
      const next = view.items[view.index + 1]?.partition_key;
      await load(view.filter && view.filter !== decision ? next : item.partition_key);
      if (!view.filter || view.filter === decision) move(1);
    } finally {
      view.busy = false;
    }
  }

  function move(step) {
    if (!view.items.length) return;
    view.index = Math.max(0, Math.min(view.items.length - 1, view.index + step));
    render();
  }

  function setFilter(filter) { view.filter = filter; view.index = 0; load(); }

  $("approve").addEventListener("click", () => verdict("approved"));
  $("reject").addEventListener("click", () => verdict("rejected"));
  $("next").addEventListener("click", () => move(1));
  $("prev").addEventListener("click", () => move(-1));
  for (const button of document.querySelectorAll("#filters button")) button.addEventListener("click", () => setFilter(button.dataset.filter));

  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement;
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.target.blur(); verdict("rejected"); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      a: () => verdict("approved"), r: () => verdict("rejected"), j: () => move(1), k: () => move(-1),
      ArrowRight: () => move(1), ArrowLeft: () => move(-1), n: () => $("review-note").focus(),
      1: () => setFilter(""), 2: () => setFilter("unreviewed"), 3: () => setFilter("rejected"), 4: () => setFilter("approved"),
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  load();
})();

// Plushify reference app: one small vanilla ES module, no build step.
// Pages opt in through <body data-page="...">; everything is wired without inline scripts (CSP).

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const STEP_LABELS = JSON.parse(document.body.dataset.stepLabels || "{}");
const STEP_ORDER = JSON.parse(document.body.dataset.stepOrder || "[]");
const ALLOWED_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];
const ALLOWED_EXT = /\.(jpe?g|png|webp|gif)$/i;

// --- helpers ---------------------------------------------------------------------------

/** Call the JSON API with the session cookie and CSRF header; never throws on HTTP errors. */
async function api(method, url, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
  try {
    const res = await fetch(url, { method, headers, body, credentials: "same-origin" });
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch { data = null; }
    }
    return { ok: res.ok, status: res.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: { error: { code: "network", message: "Can't reach the server. Check your connection." } } };
  }
}

/** A random idempotency key (crypto.randomUUID needs HTTPS; getRandomValues does not). */
function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorMessage(result, fallback) {
  return result.data?.error?.message || fallback;
}

// A processing generation's label: waiting for the model (capacity or a 429), or its step.
function progressLabel(gen) {
  return gen.waiting === "model" ? "Waiting for the model…" : stepLabel(gen.step);
}

function stepLabel(step) {
  const i = STEP_ORDER.indexOf(step);
  if (i < 0) return "Waiting for a free worker…";
  return `${STEP_LABELS[step]}… ${i + 1}/${STEP_ORDER.length}`;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "just now", "3 minutes ago": the same wording as the server's ``ago`` filter. */
function ago(date, now = Date.now()) {
  const seconds = Math.round((now - date.getTime()) / 1000);
  if (seconds < 45) return "just now";
  for (const [size, unit] of [[86400, "day"], [3600, "hour"], [60, "minute"]]) {
    if (seconds >= size) {
      const n = Math.round(seconds / size);
      return `${n} ${unit}${n !== 1 ? "s" : ""} ago`;
    }
  }
  return "just now";
}

/** Repaint every <time data-ago> so "just now" becomes "2 minutes ago" while the page is open. */
function refreshTimes(root = document) {
  root.querySelectorAll("time[data-ago]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.textContent = ago(when);
  });
}

const ICONS = {
  ok: '<svg class="icon toast-icon" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M20 6 9 17l-5-5"/></svg>',
  error: '<svg class="icon toast-icon" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><circle cx="12" cy="12" r="9"/><path d="M12 8v5M12 16h.01"/></svg>',
};

/** Show a toast; `action` = {label, onClick} adds a button. Returns the element. */
function toast(message, kind = "ok", action = null, ms = 6000) {
  const box = document.getElementById("toasts");
  if (!box) return null;
  const el = document.createElement("div");
  el.className = `toast toast-${kind}`;
  el.dataset.kind = kind;
  el.innerHTML = ICONS[kind] || ICONS.ok;
  const text = document.createElement("span");
  text.textContent = message;
  el.append(text);
  if (action) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-sm";
    btn.textContent = action.label;
    btn.addEventListener("click", () => { dismiss(el); action.onClick(); });
    el.append(btn);
  }
  box.append(el);
  setTimeout(() => dismiss(el), action ? ms * 2 : ms);
  return el;
}

function dismiss(el) {
  if (!el.isConnected) return;
  el.classList.add("leaving");
  setTimeout(() => el.remove(), 260);
}

function setLoading(btn, loading, text) {
  if (!btn) return;
  const label = btn.querySelector("span");
  if (loading) {
    btn.dataset.label = label ? label.textContent : "";
    if (label && text) label.textContent = text;
  } else if (label && btn.dataset.label) {
    label.textContent = btn.dataset.label;
  }
  btn.classList.toggle("is-loading", loading);
  btn.disabled = loading;
  btn.setAttribute("aria-busy", String(loading));
}

// --- credits widget ------------------------------------------------------------------------

const creditListeners = new Set();

/** Fetch /api/credits, repaint the header widget and tell listeners (the generate form). */
async function refreshCredits() {
  const result = await api("GET", "/api/credits");
  if (!result.ok || !result.data) return null;
  paintCredits(result.data);
  return result.data;
}

function paintCredits({ credits, in_use: inUse, available }) {
  const el = document.getElementById("credits");
  if (el) {
    el.dataset.credits = credits;
    el.dataset.inUse = inUse;
    el.dataset.available = available;
    el.title = `${available} available (${inUse} in use)`;
    el.querySelector("[data-credits-available]").textContent = available;
    el.querySelector("[data-credits-in-use]").textContent = inUse;
    const exhausted = available === 0 && inUse > 0;
    el.classList.toggle("credits-exhausted", exhausted);
    el.querySelector("[data-credits-warning]").hidden = !exhausted;
  }
  creditListeners.forEach((fn) => fn({ credits, inUse, available }));
}

function creditsFromHeader() {
  const el = document.getElementById("credits");
  if (!el) return null;
  return { credits: +el.dataset.credits, inUse: +el.dataset.inUse, available: +el.dataset.available };
}

// --- polling -------------------------------------------------------------------------------

const pollers = new Map(); // generation id -> Poller: one poller per generation, ever

/** Polls GET /api/generations/<id> until it finishes, fails, disappears or times out. */
class Poller {
  constructor(id, { interval, timeout, onUpdate, onDone, onTimeout }) {
    this.id = id;
    this.interval = interval;
    this.deadline = Date.now() + timeout;
    this.onUpdate = onUpdate;
    this.onDone = onDone;
    this.onTimeout = onTimeout;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.schedule(0);
    return this;
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), delay);
  }

  async tick() {
    if (this.stopped) return;
    if (Date.now() > this.deadline) {
      this.stop();
      this.onTimeout?.();
      return;
    }
    const result = await api("GET", `/api/generations/${this.id}`);
    if (this.stopped) return;
    if (result.status === 404 || result.status === 401) {
      this.stop();
      this.onDone?.(null);
      return;
    }
    if (result.ok && result.data) {
      const gen = result.data;
      this.onUpdate?.(gen);
      if (gen.status !== "processing") {
        this.stop();
        this.onDone?.(gen);
        return;
      }
    }
    this.schedule(this.interval); // network hiccups and 5xx: just try again next time
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (pollers.get(this.id) === this) pollers.delete(this.id);
  }
}

function track(id, options) {
  const existing = pollers.get(id);
  if (existing) return existing;
  const poller = new Poller(id, options);
  pollers.set(id, poller);
  return poller.start();
}

function stopAllPollers() {
  [...pollers.values()].forEach((p) => p.stop());
}

// Leaving the page (navigation, tab close, bfcache) stops every timer.
window.addEventListener("pagehide", stopAllPollers);
// Coming back through the back/forward cache: reload, so state and timers start afresh.
window.addEventListener("pageshow", (e) => { if (e.persisted) window.location.reload(); });

// --- before/after comparison ---------------------------------------------------------------

function setCompare(range) {
  const box = range.closest(".compare");
  if (!box) return;
  const pct = `${range.value}%`;
  box.querySelector(".compare-after-wrap").style.clipPath = `inset(0 0 0 ${pct})`;
  box.querySelector(".compare-handle").style.left = pct;
}

document.addEventListener("input", (e) => {
  if (e.target.matches?.(".compare-range")) setCompare(e.target);
});

// The result panel's comparison takes the photo's own shape, so nothing is cropped away.
function fitCompare(img) {
  const box = img.closest(".compare-natural");
  if (box && img.naturalWidth && img.naturalHeight) {
    box.style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
  }
}
document.addEventListener("load", (e) => {
  if (e.target.matches?.(".compare-natural .compare-before")) fitCompare(e.target);
}, true);

// --- generate page ------------------------------------------------------------------------

function initGenerate() {
  const root = document.getElementById("generator");
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");
  const submitBtn = document.getElementById("submit-btn");
  const fileError = document.getElementById("file-error");
  const limitMsg = document.getElementById("limit-message");
  const creditsMsg = document.getElementById("credits-message");
  const clearBtn = document.getElementById("clear-file");
  const result = document.getElementById("result");
  const tray = document.getElementById("tray");
  const trayList = document.getElementById("tray-list");

  const maxInFlight = +root.dataset.maxInFlight;
  const maxBytes = +root.dataset.maxBytes;
  const interval = +root.dataset.pollInterval;
  const timeout = +root.dataset.pollTimeout;

  // uploadKey: the Idempotency-Key of the chosen photo's upload; a retry after a network error
  // sends it again, so the server starts one generation however often the request arrives.
  const state = { file: null, uploadKey: null, previewUrl: null, busy: false, inUse: 0, available: 1, focus: null };
  const header = creditsFromHeader();
  if (header) Object.assign(state, { inUse: header.inUse, available: header.available });

  function updateSubmit() {
    const atLimit = state.inUse >= maxInFlight;
    const broke = !atLimit && state.available <= 0;
    submitBtn.disabled = !state.file || state.busy || atLimit || broke;
    limitMsg.hidden = !atLimit;
    creditsMsg.hidden = !broke;
  }

  creditListeners.add(({ inUse, available }) => {
    state.inUse = inUse;
    state.available = available;
    updateSubmit();
  });

  // File choice, preview and client-side checks (the server checks again, for real).
  function showError(message) {
    fileError.textContent = message;
    fileError.hidden = !message;
  }

  // A file is accepted only once the browser has decoded it: a text file named .jpg gets a
  // clear message instead of a broken preview (the server checks again, for real).
  let choice = 0;
  async function showPreview(file) {
    const mine = ++choice;
    const url = URL.createObjectURL(file);
    const img = document.getElementById("preview-img");
    const probe = new Image();
    probe.src = url;
    let ok = true;
    try { await probe.decode(); } catch { ok = false; }
    if (mine !== choice) { URL.revokeObjectURL(url); return; }
    if (!ok) {
      URL.revokeObjectURL(url);
      showError("We can't open that file as a photo. It may be damaged or not an image — choose a JPEG, PNG, WebP or GIF.");
      updateSubmit();
      return;
    }
    state.file = file;
    state.uploadKey = newIdempotencyKey();
    state.previewUrl = url;
    img.src = url;
    document.getElementById("preview-name").textContent = file.name;
    document.getElementById("preview-size").textContent = formatBytes(file.size);
    document.getElementById("dropzone-empty").hidden = true;
    document.getElementById("dropzone-preview").hidden = false;
    clearBtn.hidden = false;
    updateSubmit();
  }

  function chooseFile(file) {
    choice += 1;
    showError("");
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.file = null;
    state.uploadKey = null;
    state.previewUrl = null;
    document.getElementById("dropzone-empty").hidden = false;
    document.getElementById("dropzone-preview").hidden = true;
    clearBtn.hidden = true;
    if (file) {
      const typeOk = ALLOWED_TYPES.includes(file.type) || (!file.type && ALLOWED_EXT.test(file.name));
      if (!typeOk) showError("That isn't a photo we can use. Choose a JPEG, PNG, WebP or GIF.");
      else if (file.size === 0) showError("That file is empty.");
      else if (file.size > maxBytes) showError(`That photo is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`);
      else {
        showPreview(file);
        return;
      }
    }
    updateSubmit();
  }

  input.addEventListener("change", () => chooseFile(input.files[0] || null));
  clearBtn.addEventListener("click", () => { input.value = ""; chooseFile(null); input.click(); });
  ["dragenter", "dragover"].forEach((t) => dropzone.addEventListener(t, (e) => {
    e.preventDefault();
    dropzone.classList.add("dragging");
  }));
  ["dragleave", "dragend"].forEach((t) => dropzone.addEventListener(t, () => dropzone.classList.remove("dragging")));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("dragging");
    const file = e.dataTransfer?.files?.[0];
    if (file) chooseFile(file);
  });

  // The result panel shows the generation in focus (the latest one submitted or retried).
  function show(stateName) {
    result.dataset.state = stateName;
    result.querySelectorAll("[data-when]").forEach((el) => { el.hidden = el.dataset.when !== stateName; });
  }

  function paintWorking(gen) {
    show("working");
    document.getElementById("step-text").textContent = gen ? progressLabel(gen) : "Uploading your photo…";
    const i = gen ? STEP_ORDER.indexOf(gen.step) : -1;
    result.querySelectorAll(".progress span").forEach((bar, n) => {
      bar.classList.toggle("done", n < i);
      bar.classList.toggle("current", n === i);
    });
    const img = document.getElementById("working-original");
    if (gen?.original_image_url && img.getAttribute("src") !== gen.original_image_url) {
      img.src = gen.original_image_url;
      img.hidden = false;
    } else if (!gen) {
      img.hidden = true;
      img.removeAttribute("src");
    }
  }

  function paintCompleted(gen) {
    show("completed");
    const box = document.getElementById("result-compare");
    box.querySelector(".compare-before").src = gen.original_image_url;
    box.querySelector(".compare-after").src = gen.plushie_image_url;
    const range = box.querySelector(".compare-range");
    range.value = 50;
    setCompare(range);
    const subjects = { person: "a person", pet: "a pet" };
    document.getElementById("result-subject").textContent = gen.subject_type ? `A plushie of ${subjects[gen.subject_type] || "something lovely"}` : "";
    document.getElementById("result-download").href = `/g/${gen.id}/download`;
    document.getElementById("result-open").href = `/g/${gen.id}`;
  }

  function paintFailed(gen) {
    show("failed");
    document.getElementById("failed-text").textContent = gen.error || "Something went wrong.";
  }

  // The tray lists every generation still being made (including ones from before this visit).
  function trayItem(id) {
    let li = trayList.querySelector(`[data-generation-id="${id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.className = "tray-item";
      li.dataset.generationId = id;
      li.innerHTML = '<span class="spinner spinner-sm" aria-hidden="true"></span><span class="tray-label" data-step-text></span><a class="muted small"><time data-ago>just now</time></a>';
      li.querySelector("a").href = `/g/${id}`;
      li.querySelector("time").setAttribute("datetime", new Date().toISOString());
      trayList.prepend(li);
    }
    tray.hidden = false;
    return li;
  }

  function paintTray(gen) {
    if (gen.status !== "processing") {
      removeFromTray(gen.id);
      return;
    }
    const li = trayItem(gen.id);
    li.dataset.status = gen.status;
    li.querySelector("[data-step-text]").textContent = progressLabel(gen);
  }

  function removeFromTray(id) {
    trayList.querySelector(`[data-generation-id="${id}"]`)?.remove();
    tray.hidden = !trayList.children.length;
  }

  function follow(id, { focus }) {
    if (focus) {
      state.focus = id;
      paintWorking(null);
      // On a phone the result panel sits below the form: bring it into view.
      if (window.matchMedia("(max-width: 900px)").matches) {
        result.scrollIntoView({ behavior: "smooth", block: "start" });
      }
    }
    trayItem(id).dataset.status = "processing";
    track(id, {
      interval,
      timeout,
      onUpdate(gen) {
        paintTray(gen);
        if (state.focus === gen.id && gen.status === "processing") paintWorking(gen);
      },
      onDone(gen) {
        refreshCredits();
        if (!gen) {
          removeFromTray(id);
          return;
        }
        const focused = state.focus === gen.id;
        if (gen.status === "completed") {
          toast("Your plushie is ready!", "ok", focused ? null : { label: "Open", onClick: () => { window.location.href = `/g/${gen.id}`; } });
          if (focused) paintCompleted(gen);
        } else if (gen.status === "failed") {
          toast(`Generation failed: ${gen.error || "something went wrong"}`, "error", {
            label: "Retry",
            onClick: () => retry(gen.id),
          });
          if (focused) paintFailed(gen);
        }
      },
      onTimeout() {
        if (state.focus === id) show("timeout");
      },
    });
  }

  async function retry(id) {
    const btn = document.getElementById("retry-btn");
    if (state.focus === id) setLoading(btn, true, "Retrying…");
    const res = await api("POST", `/api/generations/${id}/retry`);
    setLoading(btn, false);
    if (!res.ok) {
      toast(errorMessage(res, "Could not retry."), "error");
      refreshCredits();
      return;
    }
    follow(id, { focus: true });
    refreshCredits();
  }

  document.getElementById("retry-btn").addEventListener("click", () => {
    if (state.focus && !document.getElementById("retry-btn").disabled) retry(state.focus);
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    // A second click while the first upload is in flight does nothing: one request, one poller.
    if (state.busy || submitBtn.disabled || !state.file) return;
    state.busy = true;
    setLoading(submitBtn, true, "Uploading…");
    updateSubmit();
    const body = new FormData();
    body.append("image", state.file, state.file.name);
    const res = await api("POST", root.dataset.api, body, { "Idempotency-Key": state.uploadKey });
    state.busy = false;
    setLoading(submitBtn, false);
    // 200: the server had this upload already (a retry after a lost answer): the same generation.
    if ((res.status === 202 || res.status === 200) && res.data?.generation_id) {
      input.value = "";
      chooseFile(null);
      follow(res.data.generation_id, { focus: true });
      state.inUse += 1; // optimistic until /api/credits answers
      updateSubmit();
    } else {
      const message = errorMessage(res, "The upload failed. Please try again.");
      showError(message);
      toast(message, "error");
    }
    refreshCredits();
  });

  // Generations already in progress when the page opened keep updating in the tray.
  trayList.querySelectorAll("[data-generation-id]").forEach((li) => follow(li.dataset.generationId, { focus: false }));
  updateSubmit();
}

// --- gallery -------------------------------------------------------------------------------

const FILTER_NAMES = { completed: "Completed", processing: "In progress", failed: "Failed", cancelled: "Cancelled" };

function initGallery() {
  const grid = document.getElementById("gallery");
  if (!grid) return;
  const interval = +grid.dataset.pollInterval;
  const filters = document.getElementById("gallery-filters");
  let filter = "all";

  // Counts, the summary line and the chips are always recomputed from the cards on the page.
  function updateCounts() {
    const counts = { all: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
    grid.querySelectorAll(".gcard:not(.removing)").forEach((card) => {
      counts.all += 1;
      counts[card.dataset.status] = (counts[card.dataset.status] || 0) + 1;
    });
    filters?.querySelectorAll("[data-count]").forEach((el) => { el.textContent = counts[el.dataset.count] ?? 0; });
    const parts = [`${counts.all} generation${counts.all !== 1 ? "s" : ""}`, `${counts.completed} finished`];
    if (counts.processing) parts.push(`${counts.processing} in progress`);
    if (counts.failed) parts.push(`${counts.failed} failed`);
    if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
    const summary = document.getElementById("gallery-summary");
    if (summary) summary.textContent = parts.join(" · ");
    const visible = filter === "all" ? counts.all : counts[filter];
    const empty = document.getElementById("filter-empty");
    if (empty) empty.hidden = visible > 0 || counts.all === 0;
    if (counts.all === 0) window.location.reload(); // the empty gallery has its own page
  }

  function applyFilter() {
    grid.querySelectorAll(".gcard").forEach((card) => {
      card.classList.toggle("is-hidden", filter !== "all" && card.dataset.status !== filter);
    });
    updateCounts();
  }

  function setFilter(value) {
    filter = value;
    filters?.querySelectorAll(".chip").forEach((c) => {
      const on = c.dataset.filter === value;
      c.classList.toggle("active", on);
      c.setAttribute("aria-pressed", String(on));
    });
    applyFilter();
  }

  filters?.addEventListener("click", (e) => {
    const chip = e.target.closest("[data-filter]");
    if (chip) setFilter(chip.dataset.filter);
  });

  // A card whose status changes out of the filter being shown says where it went.
  function announceMove(card) {
    if (filter === "all" || card.dataset.status === filter) return;
    const target = card.dataset.status;
    toast(`It moved to "${FILTER_NAMES[target] || target}".`, "ok", { label: "Show", onClick: () => setFilter(target) });
  }

  async function reloadCard(card) {
    const res = await fetch(card.dataset.cardUrl, { credentials: "same-origin" });
    if (res.status === 404) { card.remove(); updateCounts(); return null; }
    if (!res.ok) return card;
    const tpl = document.createElement("template");
    tpl.innerHTML = (await res.text()).trim();
    const fresh = tpl.content.firstElementChild;
    if (!card.isConnected) return null;
    card.replaceWith(fresh);
    applyFilter();
    watch(fresh);
    return fresh;
  }

  function watch(card) {
    if (card.dataset.status !== "processing") return;
    const id = card.dataset.generationId;
    track(id, {
      interval,
      timeout: 30 * 60 * 1000,
      onUpdate(gen) {
        const label = card.querySelector("[data-step-text]");
        if (label && gen.status === "processing") label.textContent = progressLabel(gen);
      },
      async onDone(gen) {
        refreshCredits();
        const live = grid.querySelector(`[data-generation-id="${id}"]`);
        if (!live) return;
        if (!gen) { live.remove(); updateCounts(); return; }
        const fresh = await reloadCard(live);
        if (gen.status === "completed") toast("A plushie just finished!", "ok", { label: "Open", onClick: () => { window.location.href = `/g/${id}`; } });
        else if (gen.status === "failed") toast("A generation failed — no credit was charged.", "error");
        if (fresh) announceMove(fresh);
      },
    });
  }

  grid.addEventListener("click", async (e) => {
    const btn = e.target.closest("[data-action]");
    if (!btn || btn.disabled) return;
    const card = btn.closest(".gcard");
    const id = card.dataset.generationId;
    const action = btn.dataset.action;
    if (action === "delete" && !window.confirm("Delete this generation and its images?")) return;
    const labels = { retry: "Retrying…", cancel: "Cancelling…", delete: "Deleting…" };
    setLoading(btn, true, labels[action]);
    const res = action === "delete"
      ? await api("DELETE", `/api/generations/${id}`)
      : await api("POST", `/api/generations/${id}/${action}`);
    if (!res.ok) {
      setLoading(btn, false);
      toast(errorMessage(res, `Could not ${action}.`), "error");
      refreshCredits();
      if (res.status === 404 || res.status === 409) await reloadCard(card); // someone else acted first
      return;
    }
    refreshCredits();
    if (action === "delete") {
      card.classList.add("removing");
      updateCounts();
      setTimeout(() => { card.remove(); updateCounts(); }, 260);
      toast("Deleted.", "ok");
      return;
    }
    pollers.get(id)?.stop();
    const fresh = await reloadCard(card);
    if (action === "cancel") toast("Cancelled — the credit was released.", "ok");
    if (fresh) announceMove(fresh);
  });

  grid.querySelectorAll(".gcard").forEach(watch);
  updateCounts();
}

// --- one generation's page -------------------------------------------------------------------

function initGeneration() {
  const root = document.getElementById("generation");
  if (!root) return;
  const id = root.dataset.generationId;
  const interval = +root.dataset.pollInterval;

  // While it is processing the page follows it; when its status changes the page is redrawn.
  if (root.dataset.status === "processing") {
    track(id, {
      interval,
      timeout: 30 * 60 * 1000,
      onUpdate(gen) {
        const label = root.querySelector("[data-step-text]");
        if (label && gen.status === "processing") label.textContent = progressLabel(gen);
      },
      onDone(gen) {
        if (!gen) window.location.href = root.dataset.gallery;
        else window.location.reload();
      },
    });
  }

  root.addEventListener("click", async (e) => {
    const btn = e.target.closest("[data-action]");
    if (!btn || btn.disabled) return;
    const action = btn.dataset.action;
    if (action === "delete" && !window.confirm("Delete this generation and its images?")) return;
    const labels = { retry: "Retrying…", cancel: "Cancelling…", delete: "Deleting…" };
    setLoading(btn, true, labels[action]);
    const res = action === "delete"
      ? await api("DELETE", `/api/generations/${id}`)
      : await api("POST", `/api/generations/${id}/${action}`);
    if (!res.ok) {
      setLoading(btn, false);
      toast(errorMessage(res, `Could not ${action}.`), "error");
      return;
    }
    pollers.get(id)?.stop();
    if (action === "delete") window.location.href = root.dataset.gallery;
    else window.location.reload();
  });
}

// --- sign-up --------------------------------------------------------------------------------

function initSignup() {
  // The browser's "Please match the requested format." says nothing; say the rule shown under
  // the field instead.
  const input = document.querySelector("input[name=username][pattern]");
  const rule = document.getElementById("username-rule")?.textContent.trim();
  if (!input || !rule) return;
  input.addEventListener("invalid", () => {
    input.setCustomValidity(input.validity.patternMismatch ? `Usernames are ${rule}` : "");
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
}

// --- runs dashboard ------------------------------------------------------------------------

function initForms() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });
  document.querySelectorAll("form").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (e.defaultPrevented || form.id === "upload-form") return;
      const btn = form.querySelector("button[type=submit]");
      if (btn) setTimeout(() => { btn.disabled = true; btn.classList.add("is-loading"); }, 0);
    });
  });
}

// --- start-up ------------------------------------------------------------------------------

document.querySelectorAll("[data-autohide]").forEach((el) => setTimeout(() => dismiss(el), 6000));
initForms();
const page = document.body.dataset.page;
if (page === "generate") initGenerate();
if (page === "gallery") initGallery();
if (page === "generation") initGeneration();
if (page === "signup") initSignup();
if (page === "generate" || page === "gallery") refreshCredits();
refreshTimes();
setInterval(refreshTimes, 20_000);

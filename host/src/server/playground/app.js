// The playground's entry: the API key, the model and task pickers, the live status in the
// header, the tabs, and the chosen task's view beside the form generated from its schema.

import { cancel, describe, follow, json, key, ready, submit } from "./api.js";
import * as audio from "./audio.js";
import * as chat from "./chat.js";
import { h } from "./dom.js";
import * as embed from "./embed.js";
import * as events from "./events.js";
import { ParamsForm } from "./form.js";
import * as image from "./image.js";
import * as snippets from "./snippets.js";

/** The view of each task; any other task gets its raw events. */
const VIEWS = {
  "text-generation": chat,
  "image-generation": image,
  "image-to-image": image,
  inpainting: image,
  transcription: audio,
  embedding: embed,
};

const $ = (id) => document.getElementById(id);
let models = [];
let unmount = null;

// Theme: the system's unless the toggle chose one (remembered in local storage).
function theme(choice) {
  if (choice) {
    document.documentElement.dataset.theme = choice;
    localStorage.setItem("rbee-theme", choice);
  }
  const dark = (document.documentElement.dataset.theme ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light")) === "dark";
  $("theme").setAttribute("aria-pressed", String(dark));
  return dark;
}

// The key panel: instead of the page when the API refuses it (`error` says why), above it to
// change the key.
function askKey(error) {
  $("main").hidden = Boolean(error);
  $("key-panel").hidden = false;
  $("key-error").textContent = error && key.get() ? `The host refused this key: ${describe(error)}` : "";
  $("key-input").focus();
}

/** Reads the models and shows the page; asks for the key if the host wants one. */
async function connect() {
  let info;
  try {
    info = await json("/v1/info");
  } catch (error) {
    if (error.status === 401) return askKey(error);
    $("fatal").textContent = `The host did not answer /v1/info: ${describe(error)}`;
    $("fatal").hidden = false;
    return;
  }
  $("key-panel").hidden = true;
  $("key-button").hidden = !key.get();
  $("main").hidden = false;
  $("pickers").hidden = false;
  models = info.models;
  const wanted = new URLSearchParams(location.hash.slice(1));
  const picker = $("model");
  picker.replaceChildren(...models.map((model) => h("option", { value: model.id }, model.id)));
  picker.value = models.some((m) => m.id === wanted.get("model")) ? wanted.get("model") : models[0]?.id;
  picker.disabled = models.length < 2;
  pickModel(wanted.get("task"));
  status();
}

// The task picker for the chosen model, then its view.
function pickModel(task) {
  const model = models.find((m) => m.id === $("model").value);
  const picker = $("task");
  picker.replaceChildren(...model.tasks.map((t) => h("option", { value: t }, t)));
  picker.value = model.tasks.includes(task) ? task : model.tasks[0];
  picker.disabled = model.tasks.length < 2;
  mount(model, picker.value);
}

/** Shows `task`'s view of `model`, with its generated form. */
function mount(model, task) {
  unmount?.abort();
  history.replaceState(null, "", `#model=${encodeURIComponent(model.id)}&task=${encodeURIComponent(task)}`);
  const view = VIEWS[task] ?? events;
  const setup = view.params?.(task) ?? {};
  const form = new ParamsForm(model.params_schema, setup);
  const abort = new AbortController();
  const run = h("button", { type: "submit", class: "primary" }, setup.action ?? "Run");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  const note = h("span", { class: "note" });
  const bar = h("progress", { max: 1, hidden: true, "aria-label": "Progress" });
  const ctx = {
    model: model.id,
    task,
    actions: h("div", { class: "actions" }, run, stop, h("div", { class: "jobstate", role: "status" }, note, bar)),
    run: (params, onEvent, files = {}) => runJob({ form, run, stop, note, bar, abort, ctx, params, onEvent, files }),
  };
  unmount = abort;
  $("view").replaceChildren(view.create(ctx));
  $("view").setAttribute("aria-label", task);
  $("params").replaceChildren(form.element);
  status();
}

/**
 * Runs one job of the mounted view: checks the form, sends the view's parameters over the
 * form's, shows the job's state and progress, wires the stop button, and records the request
 * for the API tab. Resolves with the terminal event as `{name, data}` (a refused request is an
 * `error` too), or null when nothing was sent or the view was left.
 */
async function runJob({ form, run, stop, note, bar, abort, ctx, params, onEvent, files }) {
  if (!form.check()) return null;
  const body = { model: ctx.model, task: ctx.task, params: { ...form.values(), ...params } };
  snippets.show(body, { ...form.uploads(), ...files });
  const show = (text, kind, progress) => {
    note.textContent = text;
    note.className = `note ${kind ?? ""}`;
    bar.hidden = progress == null;
    if (progress != null) bar.value = progress;
  };
  run.disabled = true;
  show("Submitting…");
  let job;
  try {
    job = await submit(body);
    onEvent("submitted", job);
    stop.disabled = false;
    stop.onclick = () => cancel(job.job_id).catch((error) => show(describe(error), "error"));
    show(job.queue_position ? `Queued, position ${job.queue_position}` : "Starting…");
    const end = await follow(job, (name, data) => {
      if (name === "loading") show(`Loading ${data.model}: ${data.message}`, null, data.progress);
      else if (name === "queued") show(`Queued, position ${data.queue_position}${data.reason ? ` (${data.reason})` : ""}`);
      else if (name === "started") show("Running…");
      else if (name === "progress" && data.total) show(`Step ${data.step} of ${data.total}`, null, data.step / data.total);
      onEvent(name, data);
    }, abort.signal);
    if (end.name === "error") show(`Failed: ${end.data.code}: ${end.data.message}`, "error");
    else show(`Ended: ${end.data.stop_reason}`, end.data.stop_reason === "cancelled" ? "warn" : "ok");
    return end;
  } catch (error) {
    if (abort.signal.aborted) return null;
    if (error.status === 401) askKey(error);
    show(`${job ? "Failed" : "Refused"}: ${describe(error)}`, "error");
    return { name: "error", data: { code: error.code ?? "failed", message: describe(error) } };
  } finally {
    run.disabled = false;
    stop.disabled = true;
    status();
  }
}

/** The header's status of the chosen model, from /ready, /v1/info and /metrics. */
async function status() {
  const id = $("model").value;
  if (!id) return;
  const [readiness, info, metrics] = await Promise.all([
    ready().catch(() => ({})),
    json("/v1/info").catch(() => null),
    fetch("/metrics").then((r) => r.text()).catch(() => ""),
  ]);
  if (!info) return;
  models = info.models;
  const model = models.find((m) => m.id === id);
  for (const option of $("model").options) {
    option.textContent = `${option.value} · ${models.find((m) => m.id === option.value)?.state ?? "gone"}`;
  }
  const gauge = (name) => {
    const line = metrics.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`model_name="${id}"`));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : model.queue[name.endsWith("waiting") ? "waiting" : "running"];
  };
  let state = { loaded: "ready", unloaded: "not loaded" }[model.state] ?? model.state;
  if (readiness.status === "draining" || readiness.status === "failed") state = readiness.status;
  else if (model.state === "loading" && readiness.status === "loading") state = `loading ${Math.round(readiness.progress * 100)}%`;
  const items = [
    ["Plugin", model.plugin],
    ["Model", model.model.split("/").filter(Boolean).pop() || model.id, model.model],
    ["Device", model.device],
    ["State", state],
    ["Queue", gauge("rbee_num_requests_waiting")],
    ["Running", gauge("rbee_num_requests_running")],
  ];
  $("status").replaceChildren(...items.map(([name, value, title]) =>
    h("div", { "data-state": name === "State" ? state.split(" ")[0] : null },
      h("dt", {}, name), h("dd", { title }, String(value)))));
}

// Tabs: Playground and API, with arrow keys between them.
function tab(chosen) {
  for (const [name, panel] of [["play", "panel-play"], ["api", "panel-api"]]) {
    const selected = name === chosen;
    $(`tab-${name}`).setAttribute("aria-selected", String(selected));
    $(`tab-${name}`).tabIndex = selected ? 0 : -1;
    $(panel).hidden = !selected;
  }
}

$("tab-play").onclick = () => tab("play");
$("tab-api").onclick = () => tab("api");
document.querySelector(".tabs").addEventListener("keydown", (event) => {
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  const next = $("tab-play").getAttribute("aria-selected") === "true" ? "api" : "play";
  tab(next);
  $(`tab-${next}`).focus();
});
$("theme").onclick = () => theme(theme() ? "light" : "dark");
$("model").onchange = () => pickModel();
$("task").onchange = () => mount(models.find((m) => m.id === $("model").value), $("task").value);
$("key-button").onclick = () => askKey();
$("key-form").onsubmit = (event) => {
  event.preventDefault();
  key.set($("key-input").value.trim());
  connect();
};
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => theme());
if (localStorage.getItem("rbee-theme")) theme(localStorage.getItem("rbee-theme"));
theme();
snippets.show(null);
setInterval(() => document.visibilityState === "visible" && !$("main").hidden && status(), 2000);
connect();

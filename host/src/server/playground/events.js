// Any other task: the generated form, and the job's raw events as they arrive.

import { h } from "./dom.js";

/** The longest string shown whole in an event (base64 payloads are cut). */
const LONGEST = 160;

/** `data` as JSON, long strings cut. */
const show = (data) =>
  JSON.stringify(data, (_, value) =>
    typeof value === "string" && value.length > LONGEST ? `${value.slice(0, LONGEST)}… (${value.length} chars)` : value);

/** The raw events view. */
export function create(ctx) {
  const log = h("ol", { class: "events", "aria-label": "Events", "aria-live": "polite" });
  const form = h("form", { class: "stack" },
    h("p", { class: "muted" }, `Set the parameters of ${ctx.task}, then run it: every event of its stream shows here.`),
    ctx.actions);
  form.onsubmit = async (event) => {
    event.preventDefault();
    log.replaceChildren();
    await ctx.run({}, (name, data) => {
      if (name === "submitted") return;
      log.append(h("li", { class: `event ${name}` }, h("b", {}, name), h("code", {}, show(data))));
      log.scrollTop = log.scrollHeight;
    });
  };
  return h("div", { class: "raw-events" }, form, log);
}

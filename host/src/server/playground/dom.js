// Small DOM helpers shared by the page's modules.

let ids = 0;

/** A fresh element id, for labels and descriptions. */
const uid = (prefix) => `${prefix}-${++ids}`;

/**
 * An element: `h("button", {class: "primary", onclick}, "Send")`. Attributes whose name starts
 * with "on" become listeners; `false`, `null` and `undefined` ones are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat(Infinity).filter((child) => child != null && child !== false));
  return element;
}

/**
 * A labelled control, `<div class="field"><label>…</label>control<small>help</small></div>`;
 * `shown` is what to place when the control sits in a wrapper (a slider beside its number).
 */
export function field(label, control, help, shown = control) {
  control.id ||= uid("field");
  const hint = help ? h("small", { id: uid("help") }, help) : null;
  if (hint) control.setAttribute("aria-describedby", hint.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), shown, hint);
}

/** Seconds as `m:ss.s`. */
export function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

/** A number with at most `digits` decimals, without trailing zeros. */
export const num = (value, digits = 2) => String(Number(value.toFixed(digits)));

/** Reads a file as a `data:` URL (the host takes binary parameters as those). */
export function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// Forms generated from a plugin's parameter JSON Schema, plus a raw JSON editor for what a
// form cannot express. Untouched fields are left out, so the plugin applies its defaults.

import { dataUrl, field, h } from "./dom.js";

/** `schema` without `$ref` (local ones resolved) and without `null` alternatives. */
function plain(schema, root) {
  if (schema.$ref?.startsWith("#/")) {
    const target = schema.$ref.slice(2).split("/").reduce((at, part) => at?.[part], root) ?? {};
    const { $ref, ...rest } = schema;
    return plain({ ...target, ...rest }, root);
  }
  for (const list of ["anyOf", "oneOf"]) {
    const options = schema[list]?.filter((option) => option.type !== "null");
    if (options?.length === 1 && options.length < schema[list].length) {
      const { [list]: _, ...rest } = schema;
      return plain({ ...plain(options[0], root), ...rest }, root);
    }
  }
  const types = [schema.type].flat().filter((type) => type && type !== "null");
  return types.length === 1 ? { ...schema, type: types[0] } : schema;
}

/** The values an enum-like schema allows, with labels: `enum`, or `oneOf`/`anyOf` of consts. */
function choices(schema) {
  if (schema.enum) return schema.enum.map((value) => ({ value, label: String(value) }));
  const options = schema.oneOf ?? schema.anyOf;
  if (options?.length && options.every((option) => "const" in option)) {
    return options.map((option) => ({ value: option.const, label: String(option.const), title: option.description }));
  }
  return null;
}

/** The slider step of a bounded number: about a hundredth of its range, a power of ten. */
function step(schema, min, max) {
  if (schema.multipleOf) return schema.multipleOf;
  if (schema.type === "integer") return 1;
  return 10 ** Math.floor(Math.log10((max - min) / 100));
}

/** One property's control, and how to read its value (`undefined`: leave it out). */
function control(name, schema, required, files) {
  const options = choices(schema);
  if (options) {
    const select = h("select", { name, required },
      required ? null : h("option", { value: "" }, `default${schema.default != null ? ` (${schema.default})` : ""}`),
      options.map((option, index) => h("option", { value: index, title: option.title }, option.label)));
    return [select, () => (select.value === "" ? undefined : options[+select.value].value)];
  }
  if (schema.type === "string" && schema.contentEncoding === "base64") {
    const kind = /audio/i.test(name + schema.description) ? "audio/*" : /image/i.test(name + schema.description) ? "image/*" : null;
    const input = h("input", { type: "file", name, accept: kind, required });
    input.addEventListener("change", async () => {
      files.set(name, input.files[0] ? { name: input.files[0].name, url: await dataUrl(input.files[0]) } : undefined);
    });
    return [input, () => files.get(name)?.url];
  }
  if (schema.type === "boolean") {
    const box = h("input", { type: "checkbox", name, checked: schema.default === true });
    return [box, () => (box.checked === (schema.default ?? false) ? undefined : box.checked)];
  }
  if (schema.type === "integer" || schema.type === "number") {
    const min = schema.minimum ?? schema.exclusiveMinimum;
    const max = schema.maximum;
    const number = h("input", {
      type: "number", name, min, max, required,
      step: schema.multipleOf ?? (schema.type === "integer" ? 1 : "any"),
      placeholder: schema.default != null ? String(schema.default) : "auto",
    });
    const read = () => (number.value === "" ? undefined : Number(number.value));
    if (min == null || max == null) return [number, read];
    const by = step(schema, min, max);
    const low = schema.exclusiveMinimum != null ? min + by : min;
    const slider = h("input", { type: "range", min: low, max, step: by, value: schema.default ?? low, tabindex: -1, "aria-hidden": "true" });
    const unset = () => slider.classList.toggle("unset", number.value === "");
    slider.addEventListener("input", () => { number.value = slider.value; unset(); });
    number.addEventListener("input", () => { if (number.value !== "") slider.value = number.value; unset(); });
    unset();
    const pair = h("div", { class: "slider" }, slider, number);
    pair.sync = () => { slider.value = number.value; unset(); };
    return [pair, read, number];
  }
  if (schema.type === "string") {
    const long = /prompt|text|input|content/.test(name);
    const input = h(long ? "textarea" : "input", {
      name, required, rows: long ? 3 : null, minlength: schema.minLength, maxlength: schema.maxLength,
      placeholder: schema.default != null ? String(schema.default) : null,
    });
    return [input, () => (input.value === "" ? undefined : input.value)];
  }
  return null;
}

/** A parameter form for one task, generated from the plugin's schema. */
export class ParamsForm {
  /**
   * `hide`: parameters the task's view provides itself (e.g. `messages`); `initial`: values of
   * number and text fields to start from (e.g. a preview every step for images).
   */
  constructor(schema, { hide = [], initial = {} } = {}) {
    this.readers = new Map();
    this.files = new Map();
    const root = plain(schema ?? {}, schema ?? {});
    const required = new Set(root.required ?? []);
    const rest = [];
    const fields = [];
    const order = Object.keys(root.properties ?? {}).sort((a, b) => required.has(b) - required.has(a));
    for (const name of order) {
      if (hide.includes(name)) continue;
      const resolved = plain(root.properties[name], root);
      const made = control(name, resolved, required.has(name), this.files);
      if (!made) {
        rest.push(name);
        continue;
      }
      const [element, read, input = element] = made;
      if (name in initial) {
        input.value = initial[name];
        element.sync?.();
      }
      this.readers.set(name, read);
      const label = h("span", {}, h("code", {}, name), required.has(name) ? h("span", { "aria-hidden": "true" }, " *") : null);
      const shown = resolved.default != null && resolved.type !== "boolean";
      const help = [resolved.description?.replace(/([^.])$/, "$1."), shown && `Default: ${resolved.default}.`].filter(Boolean).join(" ");
      fields.push(field(label, input, help, element));
    }
    this.raw = h("textarea", {
      rows: 4, spellcheck: "false", class: "mono", "aria-label": "Extra parameters as JSON",
      placeholder: rest.length ? `{"${rest[0]}": …}` : '{"name": "value"}',
    });
    this.rawError = h("p", { class: "error", role: "alert" });
    this.raw.addEventListener("input", () => this.parseRaw());
    this.element = h("form", { class: "params-form", onsubmit: (e) => e.preventDefault() },
      fields.length ? fields : h("p", { class: "muted" }, "This task has no parameters the form can show."),
      h("details", { class: "raw", open: rest.length > 0 && fields.length === 0 },
        h("summary", {}, "Raw JSON"),
        h("p", { class: "muted" }, "Merged over the form's values. ",
          rest.length ? ["Not in the form: ", rest.map((name, i) => [i ? ", " : "", h("code", {}, name)])] : "Any parameter."),
        this.raw, this.rawError));
  }

  /** The raw editor's object, or null (with the error shown) when it is not a JSON object. */
  parseRaw() {
    const text = this.raw.value.trim();
    let value = {};
    try {
      value = text ? JSON.parse(text) : {};
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("it must be a JSON object");
    } catch (error) {
      this.rawError.textContent = `Raw JSON: ${error.message}`;
      this.raw.setAttribute("aria-invalid", "true");
      return null;
    }
    this.rawError.textContent = "";
    this.raw.removeAttribute("aria-invalid");
    return value;
  }

  /** Whether the form can be sent: required fields filled, the raw JSON an object. */
  check() {
    return this.element.reportValidity() && this.parseRaw() !== null;
  }

  /** The parameters: the fields that were set, then the raw JSON over them. */
  values() {
    const values = {};
    for (const [name, read] of this.readers) {
      const value = read();
      if (value !== undefined) values[name] = value;
    }
    return { ...values, ...this.parseRaw() };
  }

  /** The uploaded files as `{name, url}`, by parameter (for the API tab). */
  uploads() {
    return Object.fromEntries([...this.files].filter(([, file]) => file));
  }
}

// The API tab: the exact calls for what the page just sent, as curl on the native job API and
// as Python with the `openai` package where an OpenAI-compatible route serves the task.

import { key } from "./api.js";
import { h } from "./dom.js";

/** Python code to place as it is in a call (e.g. `open("clip.wav", "rb")`). */
class Code {
  constructor(code) {
    this.code = code;
  }
}

/** A JSON value (or Code) as a Python expression. */
function py(value, indent = "") {
  if (value instanceof Code) return value.code;
  if (value === null) return "None";
  if (value === true || value === false) return value ? "True" : "False";
  if (Array.isArray(value)) return `[${value.map((v) => py(v, indent)).join(", ")}]`;
  if (typeof value === "object") {
    const inner = `${indent}    `;
    const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)},`);
    return items.length ? `{\n${items.join("\n")}\n${indent}}` : "{}";
  }
  return JSON.stringify(value);
}

/** A call with keyword arguments, one per line; empty `extra_body` and undefined ones left out. */
function call(name, args) {
  const lines = Object.entries(args)
    .filter(([k, v]) => v !== undefined && !(k === "extra_body" && !Object.keys(v).length))
    .map(([k, v]) => `    ${k}=${py(v, "    ")},`);
  return `${name}(\n${lines.join("\n")}\n)`;
}

/** The extensions the image routes take beside OpenAI's fields. */
const IMAGE_EXTENSIONS = ["negative_prompt", "steps", "guidance_scale", "seed", "scheduler", "strength"];

/** `params` split in two: those named in `names` (an object), and the other names. */
function split(params, names) {
  const taken = Object.fromEntries(Object.entries(params).filter(([name]) => names.includes(name)));
  return [taken, Object.keys(params).filter((name) => !names.includes(name))];
}

/** The Python `openai` call for a job, or null when no OpenAI route serves its task. */
function python({ model, task, params }, files) {
  const open = (name) => new Code(`open(${JSON.stringify(files[name]?.name ?? name)}, "rb")`);
  let reply;
  let use;
  let dropped = [];
  if (task === "text-generation") {
    const { messages, prompt, max_tokens, temperature, top_p, seed, stop, ...extra_body } = params;
    const sampling = { max_tokens, temperature, top_p, seed, stop, extra_body, stream: true };
    const chat = messages !== undefined;
    reply = chat
      ? call("client.chat.completions.create", { model, messages, ...sampling })
      : call("client.completions.create", { model, prompt, ...sampling });
    use = `for chunk in reply:\n    print(chunk.choices[0].${chat ? "delta.content" : "text"} or "", end="", flush=True)`;
  } else if (task === "image-generation" || task === "image-to-image") {
    const { prompt, init_image, width, height, n, num_images, ...rest } = params;
    const size = width && height ? `${width}x${height}` : undefined;
    const [extra_body, others] = split(rest, IMAGE_EXTENSIONS);
    dropped = others;
    reply = task === "image-to-image"
      ? call("client.images.edit", { model, prompt, image: open("init_image"), size, n: n ?? num_images, extra_body })
      : call("client.images.generate", { model, prompt, size, n: n ?? num_images, extra_body });
    use = `for i, image in enumerate(reply.data):\n    open(f"image-{i}.png", "wb").write(base64.b64decode(image.b64_json))`;
  } else if (task === "transcription") {
    const { audio, initial_prompt, language, temperature, task: mode, ...rest } = params;
    dropped = Object.keys(rest);
    const route = mode === "translate" ? "translations" : "transcriptions";
    reply = call(`client.audio.${route}.create`, {
      model, file: open("audio"), language, prompt: initial_prompt, temperature, response_format: "verbose_json",
    });
    use = `for segment in reply.segments:\n    print(f"{segment.start:6.2f} {segment.end:6.2f} {segment.text}")`;
  } else if (task === "embedding") {
    const { input, ...rest } = params;
    dropped = Object.keys(rest);
    reply = call("client.embeddings.create", { model, input });
    use = "print(len(reply.data[0].embedding), reply.data[0].embedding[:6])";
  } else {
    return null;
  }
  const auth = key.get() ? 'os.environ["RBEE_API_KEY"]' : '"none"';
  const notes = dropped.length ? `# not on this route, so left out: ${dropped.join(", ")}\n` : "";
  return `import base64, os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${location.origin}/v1", api_key=${auth})\n${notes}reply = ${reply}\n${use}\n`;
}

/** curl on the native API: submit the job, then read its events. */
function curl(body, files) {
  const marks = {};
  const params = { ...body.params };
  for (const name of Object.keys(files)) {
    if (typeof params[name] === "string") {
      params[name] = `@@${name}@@`;
      marks[name] = `$(base64 -w0 '${files[name].name.replaceAll("'", "'\\''")}')`;
    }
  }
  const escape = (text) => text.replace(/[\\$`]/g, (c) => `\\${c}`);
  let json = escape(JSON.stringify({ ...body, params }, null, 2));
  for (const [name, shell] of Object.entries(marks)) json = json.replace(`@@${name}@@`, shell);
  const auth = key.get() ? ` \\\n  -H "authorization: Bearer $RBEE_API_KEY"` : "";
  return `URL=${location.origin}
JOB_ID=$(curl -s "$URL/v1/jobs" -H 'content-type: application/json'${auth} --data-binary @- <<EOF | python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])'
${json}
EOF
)
curl -sN "$URL/v1/jobs/$JOB_ID/stream"${auth}
# to stop it: curl -X DELETE "$URL/v1/jobs/$JOB_ID"${auth.replace(" \\\n ", "")}
`;
}

/** A titled code block with a copy button. */
function block(title, code) {
  const copy = h("button", { type: "button", class: "ghost" }, "Copy");
  copy.onclick = async () => {
    await navigator.clipboard.writeText(code);
    copy.textContent = "Copied";
  };
  return h("section", { class: "snippet" },
    h("div", { class: "row spread" }, h("h3", {}, title), copy),
    h("pre", {}, h("code", {}, code)));
}

/** Why no OpenAI-compatible call is shown for `task`. */
const NATIVE_ONLY = {
  inpainting: "images.edit inpaints too, but repaints the transparent pixels of a mask, where this page paints a black-and-white one for the native API",
};

/**
 * Shows the calls for `body` (`{model, task, params}`); `files` holds the uploads by parameter,
 * as `{name, url}`, offered for download so that the calls can run as they are.
 */
export function show(body, files = {}) {
  const panel = document.getElementById("panel-api");
  if (!body) {
    panel.replaceChildren(h("p", { class: "muted" }, "Run something in the Playground tab: the exact API calls it made show here."));
    return;
  }
  const code = python(body, files);
  const uploads = Object.values(files);
  panel.replaceChildren(
    h("p", { class: "muted" }, `The last request: ${body.task} on ${body.model}.`,
      uploads.length ? [" It uploads ", uploads.map((file, i) => [i ? ", " : "", h("a", { href: file.url, download: file.name }, file.name)]),
        " (read from the current directory)."] : null),
    block("curl: the native job API, with its event stream", curl(body, files)),
    code
      ? block("Python: the openai package on the OpenAI-compatible routes", code)
      : h("p", { class: "muted" }, `No OpenAI-compatible call for ${body.task}: ${NATIVE_ONLY[body.task] ?? "no route serves it"}. Use the native API above.`));
}

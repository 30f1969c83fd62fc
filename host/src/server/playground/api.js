// The API client: the key (kept in session storage), JSON calls, and jobs with their event
// streams. EventSource cannot send a key, so streams are read with fetch and parsed here.

const KEY = "rbee-api-key";

/** An error answer of the API: its HTTP status, `code` and message. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** A failed call in one line: status, code, message and the field at fault. */
export function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  const field = error.field ? ` (field: ${error.field})` : "";
  return `${error.status ? `${error.status} ` : ""}${error.code}: ${error.message}${field}`;
}

/** The API key of this tab ("" when none). */
export const key = {
  get: () => sessionStorage.getItem(KEY) ?? "",
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

/** `fetch` with the key; an answer that is not 2xx becomes an ApiError. */
async function request(path, { method = "GET", body, signal } = {}) {
  const headers = key.get() ? { authorization: `Bearer ${key.get()}` } : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, { method, headers, signal, body: body && JSON.stringify(body) });
  if (!response.ok) {
    const error = (await response.json().catch(() => ({}))).error ?? {};
    const code = error.code ?? String(response.status);
    throw new ApiError(response.status, code, error.message ?? response.statusText, error.field ?? error.param);
  }
  return response;
}

/** A JSON call: the parsed body. */
export const json = async (path, options) => (await request(path, options)).json();

/** `GET /ready`, whatever its status (503 carries the load progress). */
export async function ready() {
  return (await fetch("/ready")).json();
}

/** `POST /v1/jobs`: `{job_id, stream_url, queue_position}`. */
export const submit = (body) => json("/v1/jobs", { method: "POST", body });

/** `DELETE /v1/jobs/{id}`: the job ends with stop reason `cancelled`. */
export const cancel = (jobId) => request(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE" });

/**
 * Reads a submitted job's events, calling `onEvent(name, data)` for each; resolves with the
 * terminal one (`end` or `error`) as `{name, data}`. Aborting `signal` closes the stream, which
 * cancels the job.
 */
export async function follow(job, onEvent, signal) {
  const response = await request(job.stream_url, { signal });
  for await (const [name, data] of events(response.body)) {
    onEvent(name, data);
    if (name === "end" || name === "error") return { name, data };
  }
  throw new ApiError(0, "stream_closed", "the stream closed before the job ended");
}

/** Server-Sent Events from a byte stream, as `[event name, parsed data]`. */
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line === "") {
        if (data.length) yield [name, JSON.parse(data.join("\n"))];
        [name, data] = ["message", []];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
    }
  }
}

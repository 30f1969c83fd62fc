// text-generation as a chat: the conversation with streamed tokens, a stop button (it cancels
// the job), and under each reply its stop reason and tokens per second.

import { field, h, num } from "./dom.js";

/** The chat sends `messages` itself. */
export const params = () => ({ hide: ["messages", "prompt"], action: "Send" });

/** One message of the conversation. */
function bubble(role, text) {
  return h("li", { class: `msg ${role}` },
    h("div", { class: "who" }, role === "user" ? "You" : "Assistant"),
    h("div", { class: "text" }, text),
    h("div", { class: "meta" }));
}

/** The chat view. */
export function create(ctx) {
  const history = [];
  const list = h("ol", { class: "messages", "aria-label": "Conversation", "aria-live": "polite" });
  const system = h("textarea", { rows: 2, placeholder: "You are a helpful assistant." });
  const input = h("textarea", { rows: 3, required: true, placeholder: "Message (Enter sends, Shift+Enter is a new line)" });
  const clear = h("button", { type: "button", class: "ghost" }, "New chat");
  clear.onclick = () => {
    history.length = 0;
    list.replaceChildren();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  async function ask(text) {
    const reply = bubble("assistant", "");
    const out = reply.querySelector(".text");
    list.append(bubble("user", text), reply);
    const messages = [...history, { role: "user", content: text }];
    if (system.value.trim()) messages.unshift({ role: "system", content: system.value.trim() });
    let tokens = 0;
    let first = 0;
    const end = await ctx.run({ messages }, (name, data) => {
      if (name === "submitted") reply.dataset.jobId = data.job_id;
      if (name === "token") {
        tokens += 1;
        first ||= performance.now();
        out.textContent += data.text;
        list.scrollTop = list.scrollHeight;
      }
    });
    if (!end) {
      reply.previousSibling.remove();
      reply.remove();
      input.value ||= text;
      return;
    }
    history.push({ role: "user", content: text }, { role: "assistant", content: out.textContent });
    const meta = reply.querySelector(".meta");
    if (end.name === "error") {
      meta.textContent = `Error: ${end.data.message}`;
      meta.classList.add("error");
      return;
    }
    const made = end.data.completion_tokens ?? tokens;
    const seconds = first ? (performance.now() - first) / 1000 : 0;
    const rate = end.data.decode_tokens_per_second ?? (seconds > 0 ? tokens / seconds : null);
    reply.dataset.stopReason = end.data.stop_reason;
    meta.textContent = [`Stop: ${end.data.stop_reason}`, `${made} tokens`, rate && `${num(rate, 1)} tokens/s`]
      .filter(Boolean).join(" · ");
  }

  const composer = h("form", { class: "composer" },
    field("Message", input),
    ctx.actions);
  composer.onsubmit = (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    ask(text);
  };
  return h("div", { class: "chat" },
    h("div", { class: "row spread" },
      h("details", { class: "system" }, h("summary", {}, "System prompt"), field("System prompt", system)),
      clear),
    list,
    composer);
}

// embedding: one or two texts; shows the vector's size, its first values, and how similar the
// two texts are (cosine similarity).

import { field, h, num } from "./dom.js";

/** The view sends `input` itself. */
export const params = () => ({ hide: ["input"], action: "Embed" });

/** The cosine similarity of two vectors. */
function cosine(a, b) {
  let [dot, aa, bb] = [0, 0, 0];
  a.forEach((x, i) => {
    dot += x * b[i];
    aa += x * x;
    bb += b[i] * b[i];
  });
  return dot / Math.sqrt(aa * bb);
}

/** The embedding view. */
export function create(ctx) {
  const first = h("textarea", { rows: 2, required: true, placeholder: "A bee lands on a flower." });
  const second = h("textarea", { rows: 2, placeholder: "An insect visits a blossom." });
  const result = h("dl", { class: "figures", "aria-live": "polite" });
  const form = h("form", { class: "stack" },
    field("First text", first),
    field("Second text", second, "Optional: with two texts, their similarity is shown."),
    ctx.actions);
  form.onsubmit = async (event) => {
    event.preventDefault();
    const vectors = [];
    result.replaceChildren();
    const input = second.value.trim() ? [first.value, second.value] : first.value;
    const end = await ctx.run({ input }, (name, data) => {
      if (name === "embedding") vectors[data.index] = data.vector;
    });
    if (!end || end.name === "error" || !vectors[0]) return;
    const rows = [
      ["Dimensions", String(vectors[0].length)],
      ["First values", `[${vectors[0].slice(0, 6).map((x) => num(x, 4)).join(", ")}, …]`],
    ];
    if (vectors[1]) {
      const similarity = cosine(vectors[0], vectors[1]);
      rows.push(["Cosine similarity", [num(similarity, 3), " ",
        h("meter", { min: -1, max: 1, value: similarity, "aria-label": "Cosine similarity" })]]);
    }
    result.replaceChildren(...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  };
  return h("div", { class: "embed" }, form, result);
}

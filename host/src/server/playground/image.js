// Image tasks: the prompt, a start image (image-to-image, inpainting) with a mask painter
// (inpainting), the live previews while the steps run, then the final images.

import { dataUrl, field, h } from "./dom.js";

/** The view sends the prompt and the images itself; previews are on unless turned off. */
export function params(task) {
  const hide = ["prompt", "init_image", "mask_image"];
  if (task === "image-generation") hide.push("strength");
  return { hide, initial: { preview_every: 1 }, action: "Generate" };
}

/** A canvas over the start image where the area to repaint is painted. */
function painter() {
  const base = h("canvas", { "aria-hidden": "true" });
  const mask = h("canvas", { class: "mask", role: "img", "aria-label": "Mask: paint the area to repaint" });
  const brush = h("input", { type: "range", min: 1, max: 64, value: 12 });
  const pen = mask.getContext("2d");
  let last = null;
  const at = (event) => {
    const box = mask.getBoundingClientRect();
    return [(event.clientX - box.left) * (mask.width / box.width), (event.clientY - box.top) * (mask.height / box.height)];
  };
  const stroke = (event) => {
    const point = at(event);
    pen.lineWidth = (brush.value / 100) * mask.width;
    pen.beginPath();
    pen.moveTo(...(last ?? point));
    pen.lineTo(...point);
    pen.stroke();
    last = point;
  };
  mask.onpointerdown = (event) => {
    mask.setPointerCapture(event.pointerId);
    last = null;
    stroke(event);
  };
  mask.onpointermove = (event) => last && stroke(event);
  mask.onpointerup = () => (last = null);
  const fill = (all) => {
    pen.clearRect(0, 0, mask.width, mask.height);
    if (all) pen.fillRect(0, 0, mask.width, mask.height);
  };
  const element = h("div", { class: "painter-box", hidden: true },
    h("div", { class: "painter" }, base, mask),
    h("div", { class: "row" },
      field("Brush size", brush),
      h("button", { type: "button", class: "ghost", onclick: () => fill(false) }, "Clear mask"),
      h("button", { type: "button", class: "ghost", onclick: () => fill(true) }, "Mask all")));
  return {
    element,
    /** Shows `image` (an <img>, loaded) to paint over. */
    load(image) {
      base.width = mask.width = image.naturalWidth;
      base.height = mask.height = image.naturalHeight;
      base.getContext("2d").drawImage(image, 0, 0);
      Object.assign(pen, { lineCap: "round", lineJoin: "round", strokeStyle: "#ff2d6f", fillStyle: "#ff2d6f" });
      element.hidden = false;
    },
    /** The mask as a PNG `data:` URL, white where painted; null when nothing is. */
    png() {
      const pixels = pen.getImageData(0, 0, mask.width, mask.height);
      let painted = false;
      for (let i = 0; i < pixels.data.length; i += 4) {
        const on = pixels.data[i + 3] > 0;
        painted ||= on;
        pixels.data.fill(on ? 255 : 0, i, i + 3);
        pixels.data[i + 3] = 255;
      }
      const out = h("canvas", { width: mask.width, height: mask.height });
      out.getContext("2d").putImageData(pixels, 0, 0);
      return painted ? out.toDataURL("image/png") : null;
    },
  };
}

/** An image result with its caption and a download link. */
function result(data, index) {
  const src = `data:${data.media_type};base64,${data.data}`;
  const size = data.width ? `${data.width}×${data.height}` : "";
  return h("figure", { class: "result" },
    h("img", { src, alt: `Image ${index + 1}${data.seed != null ? `, seed ${data.seed}` : ""}` }),
    h("figcaption", {}, [size, data.seed != null && `seed ${data.seed}`].filter(Boolean).join(" · "), " ",
      h("a", { href: src, download: `image-${data.seed ?? index + 1}.png` }, "Download")));
}

/** The image view. */
export function create(ctx) {
  const needsStart = ctx.task !== "image-generation";
  const prompt = h("textarea", { rows: 3, required: true, placeholder: "A watercolour of a bee on a sunflower" });
  const picture = h("input", { type: "file", accept: "image/png,image/jpeg", required: needsStart });
  const paint = painter();
  const output = h("div", { class: "output", "aria-live": "polite" },
    h("p", { class: "muted placeholder" }, "Images appear here, with a preview at each step."));
  const meta = h("p", { class: "meta", "aria-live": "polite" });
  let start = null;
  picture.onchange = async () => {
    const file = picture.files[0];
    start = file && { name: file.name, url: await dataUrl(file) };
    if (!start || ctx.task !== "inpainting") return;
    const image = h("img", { src: start.url });
    await image.decode();
    paint.load(image);
  };
  const form = h("form", { class: "stack" },
    field("Prompt", prompt),
    needsStart && field("Start image", picture, ctx.task === "inpainting" ? "Then paint the area to repaint." : "The image to rework."),
    ctx.task === "inpainting" && paint.element,
    ctx.actions);
  form.onsubmit = async (event) => {
    event.preventDefault();
    const params = { prompt: prompt.value };
    const files = {};
    if (needsStart && start) {
      params.init_image = start.url;
      files.init_image = start;
    }
    if (ctx.task === "inpainting" && start) {
      params.mask_image = paint.png();
      files.mask_image = { name: "mask.png", url: params.mask_image };
      if (!params.mask_image) {
        meta.textContent = "Paint the area to repaint first (or Mask all).";
        return;
      }
    }
    const preview = h("img", { class: "preview", alt: "Live preview" });
    const finals = [];
    meta.textContent = "";
    const end = await ctx.run(params, (name, data) => {
      if (name === "preview") {
        preview.src = `data:${data.media_type};base64,${data.data}`;
        if (!preview.isConnected) output.replaceChildren(preview);
      } else if (name === "artifact" && data.media_type?.startsWith("image/")) {
        finals.push(result(data, finals.length));
        output.replaceChildren(...finals);
      }
    }, files);
    if (!end) return;
    meta.classList.toggle("error", end.name === "error");
    meta.textContent = end.name === "error"
      ? `Error: ${end.data.message}`
      : [`Stop: ${end.data.stop_reason}`, end.data.timings_ms?.total && `${Math.round(end.data.timings_ms.total)} ms`]
        .filter(Boolean).join(" · ");
  };
  return h("div", { class: "image" }, form, output, meta);
}

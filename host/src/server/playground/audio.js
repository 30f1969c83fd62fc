// transcription: an uploaded clip (or a microphone recording where the browser allows it),
// the transcript as it streams, and its timed segments.

import { clock, dataUrl, field, h, num } from "./dom.js";

/** The view sends the audio itself. */
export const params = () => ({ hide: ["audio"], action: "Transcribe" });

/** Decoded audio as a 16 kHz mono 16-bit WAV file (the host takes wav, not the recorder's webm). */
async function wav(blob) {
  const decoded = await new AudioContext().decodeAudioData(await blob.arrayBuffer());
  const rate = 16000;
  const offline = new OfflineAudioContext(1, Math.ceil(decoded.duration * rate), rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  const bytes = samples.length * 2;
  const view = new DataView(new ArrayBuffer(44 + bytes));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + bytes, true);
  text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); // the fmt chunk's size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, bytes, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([view], { type: "audio/wav" });
}

/** The transcription view. */
export function create(ctx) {
  const upload = h("input", { type: "file", accept: "audio/*,.wav,.flac,.mp3,.ogg" });
  const player = h("audio", { controls: true, hidden: true });
  const record = h("button", { type: "button", hidden: !(navigator.mediaDevices?.getUserMedia && window.MediaRecorder) }, "Record");
  const transcript = h("p", { class: "transcript", "aria-live": "polite" });
  const segments = h("ol", { class: "segments", "aria-label": "Segments" });
  const meta = h("p", { class: "meta", "aria-live": "polite" });
  let clip = null;
  let recorder = null;

  const use = async (blob, name) => {
    clip = { name, url: await dataUrl(blob) };
    player.src = URL.createObjectURL(blob);
    player.hidden = false;
  };
  upload.onchange = () => upload.files[0] && use(upload.files[0], upload.files[0].name);
  record.onclick = async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = (event) => chunks.push(event.data);
      recorder.onstop = async () => {
        stream.getTracks().forEach((track) => track.stop());
        const type = recorder.mimeType;
        recorder = null;
        record.textContent = "Record";
        await use(await wav(new Blob(chunks, { type })), "recording.wav");
      };
      recorder.start();
      record.textContent = "Stop recording";
    } catch (error) {
      meta.textContent = `Cannot record: ${error.message}`;
    }
  };

  const form = h("form", { class: "stack" },
    h("div", { class: "row center" }, field("Audio file", upload, "wav, flac, mp3 or ogg/vorbis"), record),
    player,
    ctx.actions);
  form.onsubmit = async (event) => {
    event.preventDefault();
    if (!clip) {
      meta.textContent = "Choose an audio file or record one first.";
      return;
    }
    let done = "";
    let pending = "";
    transcript.textContent = "";
    segments.replaceChildren();
    meta.textContent = "";
    const end = await ctx.run({ audio: clip.url }, (name, data) => {
      if (name === "token") pending += data.text;
      if (name === "segment") {
        done = `${done} ${data.text.trim()}`.trim();
        pending = "";
        segments.append(h("li", {},
          h("time", {}, `${clock(data.start)} – ${clock(data.end)}`), " ", h("span", {}, data.text.trim())));
      }
      if (name === "token" || name === "segment") transcript.textContent = `${done} ${pending}`.trim();
    }, { audio: clip });
    if (!end) return;
    meta.classList.toggle("error", end.name === "error");
    const d = end.data;
    meta.textContent = end.name === "error"
      ? `Error: ${d.message}`
      : [`Stop: ${d.stop_reason}`, d.language && `language ${d.language}`,
        d.audio_seconds != null && `${num(d.audio_seconds)} s of audio`,
        d.real_time_factor != null && `real-time factor ${num(d.real_time_factor)}`].filter(Boolean).join(" · ");
  };
  return h("div", { class: "audio" }, form, transcript, segments, meta);
}

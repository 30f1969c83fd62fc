//! Writes the benchmark's random-weight model of Qwen3-0.6B's shape, every matrix in Q8_0, with
//! the test model's tokenizer (so its vocabulary), to the path given; llama.cpp and the plugin
//! both read it. Run by `cargo xtask bench llm`.

use candle_core::quantized::{GgmlDType, gguf_file::Content};
use rbee_plugin_llm::test_support::{Tiny, model_path};

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .expect("usage: write_qwen3_bench <out.gguf>");
    let source = model_path();
    let mut file = std::fs::File::open(&source).expect("opening the test model");
    let tokenizer = Content::read(&mut file).expect("reading the test model's metadata");
    let vocab = tokenizer.tensor_infos["token_embd.weight"].shape.dims()[0];
    Tiny::qwen3_0_6b(vocab).write_with_tokenizer(out.as_ref(), GgmlDType::Q8_0, &tokenizer);
}

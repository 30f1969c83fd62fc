//! The task vocabulary: for each standard task, its name, the parameters the host's routes
//! send, the events it emits and the keys of its `end` details, including stop reasons.
//!
//! The host's OpenAI-compatible routes are built from these definitions and nothing else, so a
//! third-party plugin that serves a task by these names (and emits these events) gets the
//! routes for free. A plugin may accept more parameters than a task lists here (they reach it
//! through the native `POST /v1/jobs`), and may serve tasks of its own.

/// Stop reasons every task may end with (the `end` event's `stop_reason`).
pub mod stop_reason {
    /// The job ran to its natural end.
    pub const COMPLETED: &str = "completed";
    /// A client cancelled the job, went away, or the host drained.
    pub const CANCELLED: &str = "cancelled";
    /// The job's deadline passed.
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
}

/// The names of the events the host's sink emits (SSE `event:` names). A custom event may not
/// take one of these; the host prefixes such a name with `x-`.
pub mod event {
    /// The job began: `{job_id, ...details}`.
    pub const STARTED: &str = "started";
    /// A piece of text: `{index, text}`.
    pub const TOKEN: &str = "token";
    /// Progress: `{step, total}`.
    pub const PROGRESS: &str = "progress";
    /// A low-resolution picture of work in progress: `{media_type, data, ...metadata}`.
    pub const PREVIEW: &str = "preview";
    /// A finished file: `{media_type, data, ...metadata}`.
    pub const ARTIFACT: &str = "artifact";
    /// An embedding: `{index, vector}`.
    pub const EMBEDDING: &str = "embedding";
    /// Free-form figures.
    pub const METRICS: &str = "metrics";
    /// The terminal event of a job that ended: `{stop_reason, ...details}`.
    pub const END: &str = "end";
    /// The terminal event of a job that failed: `{code, message}`.
    pub const ERROR: &str = "error";
    /// Every name above.
    pub const RESERVED: &[&str] = &[
        STARTED, TOKEN, PROGRESS, PREVIEW, ARTIFACT, EMBEDDING, METRICS, END, ERROR,
    ];
}

/// One standard task: what the host's routes send and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    /// The task name jobs carry.
    pub name: &'static str,
    /// The parameters the host's routes may send (a plugin must accept them).
    pub params: &'static [&'static str],
    /// The parameters that cross as bytes in [`crate::Job::inputs`], not in `params_json`.
    /// In the native JSON API clients send them base64-encoded; the host decodes them.
    pub binary_params: &'static [&'static str],
    /// The events the task emits, beyond `started`, `metrics` and the terminal one.
    pub events: &'static [&'static str],
    /// The keys of the `end` details the host's routes read.
    pub end_keys: &'static [&'static str],
    /// The task's own stop reasons, beyond [`stop_reason`]'s.
    pub stop_reasons: &'static [&'static str],
}

/// `text-generation`: a completion of a prompt or a chat. Events: `token` per piece of text.
pub mod text_generation {
    use super::{TaskSpec, event};

    /// The task name.
    pub const TASK: &str = "text-generation";

    /// Parameter names.
    pub mod param {
        /// A raw prompt (string); exclusive with `messages`.
        pub const PROMPT: &str = "prompt";
        /// A chat: a list of `{role, content}` with string content. Since 2.2 an assistant
        /// message may carry `tool_calls` (OpenAI's shape, content null) and a `tool` message
        /// its `tool_call_id`.
        pub const MESSAGES: &str = "messages";
        /// The most tokens to generate.
        pub const MAX_TOKENS: &str = "max_tokens";
        /// Sampling temperature; 0 is greedy.
        pub const TEMPERATURE: &str = "temperature";
        /// Keep the k most likely tokens.
        pub const TOP_K: &str = "top_k";
        /// Nucleus sampling mass.
        pub const TOP_P: &str = "top_p";
        /// Drop tokens less likely than this fraction of the best one.
        pub const MIN_P: &str = "min_p";
        /// Penalty on recently generated tokens.
        pub const REPEAT_PENALTY: &str = "repeat_penalty";
        /// How many recent tokens the penalty looks at.
        pub const REPEAT_LAST_N: &str = "repeat_last_n";
        /// The random seed.
        pub const SEED: &str = "seed";
        /// Stop sequences: a list of strings.
        pub const STOP: &str = "stop";
        /// Constrains the output (2.2): `{"type": "text"}`, `{"type": "json_object"}`,
        /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}` as OpenAI
        /// shapes it, or `{"type": "regex", "pattern": "..."}`. A constraint the plugin cannot
        /// compile is an `invalid_params` error naming this field, before any token.
        pub const RESPONSE_FORMAT: &str = "response_format";
        /// A grammar the output must follow (2.2), in Lark syntax; exclusive with
        /// [`RESPONSE_FORMAT`].
        pub const GRAMMAR: &str = "grammar";
        /// Functions the model may call (2.2), as OpenAI shapes them:
        /// `[{"type": "function", "function": {"name", "description", "parameters"}}]`.
        pub const TOOLS: &str = "tools";
        /// Whether and which tool the model must call (2.2): `"auto"`, `"none"`, `"required"`
        /// or `{"type": "function", "function": {"name"}}`.
        pub const TOOL_CHOICE: &str = "tool_choice";
        /// Whether the model may call more than one tool in a turn (2.2); default true.
        pub const PARALLEL_TOOL_CALLS: &str = "parallel_tool_calls";
        /// Report each sampled token's log probability (2.2) in [`super::TOKEN_LOGPROBS`]
        /// events.
        pub const LOGPROBS: &str = "logprobs";
        /// How many of the most likely alternatives each [`super::TOKEN_LOGPROBS`] entry lists
        /// (2.2), 0 to 20; needs [`LOGPROBS`].
        pub const TOP_LOGPROBS: &str = "top_logprobs";
    }

    /// The log probabilities of sampled tokens, a custom event (2.2) sent just before the
    /// `token` event whose text those tokens make: `{"content": [{"token", "logprob", "bytes",
    /// "top_logprobs": [{"token", "logprob", "bytes"}]}]}`. Tokens whose text never reaches a
    /// `token` event (a stop sequence swallowed it) are not reported. The host merges it into
    /// that `token` event as `logprobs` (the `content` list).
    pub const TOKEN_LOGPROBS: &str = "token_logprobs";

    /// A completed tool call the model made, a custom event (2.2): `{"index", "id", "name",
    /// "arguments"}`, `arguments` being JSON text. Its text is not sent as `token` events.
    pub const TOOL_CALL: &str = "tool_call";

    /// Stop reasons of this task.
    pub mod stop_reason {
        /// The model emitted its end-of-sequence token.
        pub const EOS: &str = "eos";
        /// A stop sequence appeared (it is not part of the text).
        pub const STOP_SEQUENCE: &str = "stop_sequence";
        /// `max_tokens` were generated.
        pub const MAX_TOKENS: &str = "max_tokens";
        /// The model ended its turn after calling tools ([`super::TOOL_CALL`] events); 2.2.
        pub const TOOL_CALLS: &str = "tool_calls";
    }

    /// Keys of the `end` details.
    pub mod end {
        /// Tokens in the prompt, after the chat template.
        pub const PROMPT_TOKENS: &str = "prompt_tokens";
        /// Tokens generated.
        pub const COMPLETION_TOKENS: &str = "completion_tokens";
        /// Prompt tokens whose keys and values came from the plugin's prefix cache instead of
        /// being computed (counted in [`PROMPT_TOKENS`] too); absent means none. Hosts before
        /// 2.1 ignore it.
        pub const CACHED_PROMPT_TOKENS: &str = "cached_prompt_tokens";
    }

    /// The task's specification.
    pub const SPEC: TaskSpec = TaskSpec {
        name: TASK,
        params: &[
            param::PROMPT,
            param::MESSAGES,
            param::MAX_TOKENS,
            param::TEMPERATURE,
            param::TOP_K,
            param::TOP_P,
            param::MIN_P,
            param::REPEAT_PENALTY,
            param::REPEAT_LAST_N,
            param::SEED,
            param::STOP,
            param::RESPONSE_FORMAT,
            param::GRAMMAR,
            param::TOOLS,
            param::TOOL_CHOICE,
            param::PARALLEL_TOOL_CALLS,
            param::LOGPROBS,
            param::TOP_LOGPROBS,
        ],
        binary_params: &[],
        events: &[event::TOKEN, TOKEN_LOGPROBS, TOOL_CALL],
        end_keys: &[
            end::PROMPT_TOKENS,
            end::COMPLETION_TOKENS,
            end::CACHED_PROMPT_TOKENS,
        ],
        stop_reasons: &[
            stop_reason::EOS,
            stop_reason::STOP_SEQUENCE,
            stop_reason::MAX_TOKENS,
            stop_reason::TOOL_CALLS,
        ],
    };
}

/// `embedding`: one vector per input text. Events: `embedding` per input, by index.
pub mod embedding {
    use super::{TaskSpec, event};

    /// The task name.
    pub const TASK: &str = "embedding";

    /// Parameter names.
    pub mod param {
        /// A string or a list of strings.
        pub const INPUT: &str = "input";
    }

    /// Keys of the `end` details.
    pub mod end {
        /// Tokens read over all inputs.
        pub const PROMPT_TOKENS: &str = "prompt_tokens";
    }

    /// The task's specification.
    pub const SPEC: TaskSpec = TaskSpec {
        name: TASK,
        params: &[param::INPUT],
        binary_params: &[],
        events: &[event::EMBEDDING],
        end_keys: &[end::PROMPT_TOKENS],
        stop_reasons: &[],
    };
}

/// `transcription`: speech to text. Events: `token` per piece of text and [`SEGMENT`] per
/// timed segment.
pub mod transcription {
    use super::{TaskSpec, event};

    /// The task name.
    pub const TASK: &str = "transcription";

    /// A timed piece of the transcript, a custom event: `{start, end, text}` in seconds, and
    /// optionally `seek`, `tokens`, `temperature`, `avg_logprob`, `compression_ratio`,
    /// `no_speech_prob` as OpenAI's verbose_json reports them.
    pub const SEGMENT: &str = "segment";

    /// Keys of a [`SEGMENT`] event.
    pub mod segment {
        /// Start, in seconds.
        pub const START: &str = "start";
        /// End, in seconds.
        pub const END: &str = "end";
        /// The segment's text.
        pub const TEXT: &str = "text";
        /// The decoder's position, in frames.
        pub const SEEK: &str = "seek";
        /// The segment's token ids.
        pub const TOKENS: &str = "tokens";
        /// Per-segment statistics OpenAI's verbose_json carries.
        pub const STATS: &[&str] = &[
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ];
    }

    /// Parameter names.
    pub mod param {
        /// The recording (wav, flac, ogg, mp3), as bytes.
        pub const AUDIO: &str = "audio";
        /// The spoken language (ISO 639-1), or absent to detect it.
        pub const LANGUAGE: &str = "language";
        /// `transcribe` (keep the language) or `translate` (into English).
        pub const TASK: &str = "task";
        /// Text that primes the decoder (names, spelling).
        pub const INITIAL_PROMPT: &str = "initial_prompt";
        /// Decoding temperature.
        pub const TEMPERATURE: &str = "temperature";
        /// Whether to emit timed segments.
        pub const TIMESTAMPS: &str = "timestamps";
    }

    /// Values of [`param::TASK`].
    pub mod mode {
        /// Text in the spoken language.
        pub const TRANSCRIBE: &str = "transcribe";
        /// English text, whatever the spoken language.
        pub const TRANSLATE: &str = "translate";
    }

    /// Keys of the `end` details.
    pub mod end {
        /// The language spoken (detected or given).
        pub const LANGUAGE: &str = "language";
        /// The recording's length in seconds.
        pub const AUDIO_SECONDS: &str = "audio_seconds";
    }

    /// The task's specification.
    pub const SPEC: TaskSpec = TaskSpec {
        name: TASK,
        params: &[
            param::AUDIO,
            param::LANGUAGE,
            param::TASK,
            param::INITIAL_PROMPT,
            param::TEMPERATURE,
            param::TIMESTAMPS,
        ],
        binary_params: &[param::AUDIO],
        events: &[event::TOKEN, SEGMENT],
        end_keys: &[end::LANGUAGE, end::AUDIO_SECONDS],
        stop_reasons: &[],
    };
}

/// The image tasks: `image-generation`, `image-to-image` and `inpainting`. Events: `progress`
/// per step (with an optional `preview`) and one `artifact` (a PNG) per image.
pub mod image {
    use super::{TaskSpec, event};

    /// Text to image.
    pub const GENERATION: &str = "image-generation";
    /// An image redrawn after a prompt.
    pub const TO_IMAGE: &str = "image-to-image";
    /// Part of an image redrawn, where the mask is white.
    pub const INPAINTING: &str = "inpainting";

    /// Parameter names.
    pub mod param {
        /// What to draw.
        pub const PROMPT: &str = "prompt";
        /// What to keep out.
        pub const NEGATIVE_PROMPT: &str = "negative_prompt";
        /// Denoising steps.
        pub const STEPS: &str = "steps";
        /// Classifier-free guidance scale.
        pub const GUIDANCE_SCALE: &str = "guidance_scale";
        /// The random seed.
        pub const SEED: &str = "seed";
        /// The scheduler's name.
        pub const SCHEDULER: &str = "scheduler";
        /// How many images.
        pub const N: &str = "n";
        /// Width in pixels.
        pub const WIDTH: &str = "width";
        /// Height in pixels.
        pub const HEIGHT: &str = "height";
        /// How much of the init image to redraw, 0 to 1.
        pub const STRENGTH: &str = "strength";
        /// The image to start from (PNG or JPEG), as bytes.
        pub const INIT_IMAGE: &str = "init_image";
        /// The mask (white is redrawn), as bytes.
        pub const MASK_IMAGE: &str = "mask_image";
        /// The parameters the OpenAI image routes pass through as given.
        pub const PASSED_THROUGH: &[&str] =
            &[NEGATIVE_PROMPT, STEPS, GUIDANCE_SCALE, SEED, SCHEDULER];
    }

    /// Keys of an `artifact` event's metadata.
    pub mod artifact {
        /// The seed that made the image.
        pub const SEED: &str = "seed";
    }

    const PARAMS: &[&str] = &[
        param::PROMPT,
        param::NEGATIVE_PROMPT,
        param::STEPS,
        param::GUIDANCE_SCALE,
        param::SEED,
        param::SCHEDULER,
        param::N,
        param::WIDTH,
        param::HEIGHT,
        param::STRENGTH,
        param::INIT_IMAGE,
        param::MASK_IMAGE,
    ];
    const EVENTS: &[&str] = &[event::PROGRESS, event::PREVIEW, event::ARTIFACT];

    /// `image-generation`.
    pub const GENERATION_SPEC: TaskSpec = TaskSpec {
        name: GENERATION,
        params: PARAMS,
        binary_params: &[],
        events: EVENTS,
        end_keys: &[],
        stop_reasons: &[],
    };

    /// `image-to-image`.
    pub const TO_IMAGE_SPEC: TaskSpec = TaskSpec {
        name: TO_IMAGE,
        params: PARAMS,
        binary_params: &[param::INIT_IMAGE],
        events: EVENTS,
        end_keys: &[],
        stop_reasons: &[],
    };

    /// `inpainting`.
    pub const INPAINTING_SPEC: TaskSpec = TaskSpec {
        name: INPAINTING,
        params: PARAMS,
        binary_params: &[param::INIT_IMAGE, param::MASK_IMAGE],
        events: EVENTS,
        end_keys: &[],
        stop_reasons: &[],
    };
}

/// `rerank` (2.2): scores documents against a query, one [`SCORE`] event per document. A
/// document longer than the model's window is truncated (the query is kept whole) and named in
/// the `end` details' [`end::TRUNCATED`].
pub mod rerank {
    use super::TaskSpec;

    /// The task name.
    pub const TASK: &str = "rerank";

    /// Parameter names.
    pub mod param {
        /// What the documents are ranked against (a string).
        pub const QUERY: &str = "query";
        /// The texts to score: a list of strings.
        pub const DOCUMENTS: &str = "documents";
    }

    /// One document's relevance, a custom event: `{"index", "relevance_score"}`, `index` being
    /// the document's position in [`param::DOCUMENTS`]; higher is more relevant. Events come in
    /// the plugin's order, not necessarily by index or by score.
    pub const SCORE: &str = "score";

    /// Keys of a [`SCORE`] event.
    pub mod score {
        /// The document's position in [`super::param::DOCUMENTS`].
        pub const INDEX: &str = "index";
        /// How relevant the document is to the query (the plugin's scale: a probability for a
        /// cross-encoder, a cosine similarity for a bi-encoder).
        pub const RELEVANCE_SCORE: &str = "relevance_score";
    }

    /// Keys of the `end` details.
    pub mod end {
        /// Tokens read over all query-document pairs, special tokens included.
        pub const PROMPT_TOKENS: &str = "prompt_tokens";
        /// The indices of the documents that were cut to fit the model's window (a list,
        /// ascending; empty when none was).
        pub const TRUNCATED: &str = "truncated";
    }

    /// The task's specification.
    pub const SPEC: TaskSpec = TaskSpec {
        name: TASK,
        params: &[param::QUERY, param::DOCUMENTS],
        binary_params: &[],
        events: &[SCORE],
        end_keys: &[end::PROMPT_TOKENS, end::TRUNCATED],
        stop_reasons: &[],
    };
}

/// `text-to-speech` (2.2): speech from text, one `artifact` event per chunk of audio (a
/// sentence, say) as soon as it is synthesised, so the first audio arrives before the whole
/// text is. Each chunk is [`MEDIA_TYPE`]: raw 16-bit little-endian mono samples at the rate
/// its metadata's [`chunk::SAMPLE_RATE`] gives; the chunks of one job, concatenated in order,
/// are the whole speech.
pub mod text_to_speech {
    use super::{TaskSpec, event};

    /// The task name.
    pub const TASK: &str = "text-to-speech";

    /// The media type of every audio chunk: signed 16-bit little-endian mono PCM.
    pub const MEDIA_TYPE: &str = "audio/pcm";

    /// Parameter names.
    pub mod param {
        /// The text to speak (a string).
        pub const INPUT: &str = "input";
        /// The voice: a name the plugin knows (OpenAI's `alloy`, `nova`, ... at least).
        pub const VOICE: &str = "voice";
        /// How the voice should sound, in words (OpenAI's `instructions`); overrides what
        /// [`VOICE`] would say where the model is steered by text.
        pub const INSTRUCTIONS: &str = "instructions";
        /// How fast to speak: 0.25 to 4.0, 1.0 being the model's pace.
        pub const SPEED: &str = "speed";
        /// The sample rate of the chunks, in Hz; default the model's own.
        pub const SAMPLE_RATE: &str = "sample_rate";
    }

    /// Keys of an audio chunk's `artifact` metadata.
    pub mod chunk {
        /// The chunk's position among the job's chunks, from 0.
        pub const INDEX: &str = "index";
        /// Samples per second.
        pub const SAMPLE_RATE: &str = "sample_rate";
        /// The text the chunk speaks.
        pub const TEXT: &str = "text";
    }

    /// Keys of the `end` details.
    pub mod end {
        /// Seconds of audio produced.
        pub const AUDIO_SECONDS: &str = "audio_seconds";
        /// The sample rate of every chunk.
        pub const SAMPLE_RATE: &str = "sample_rate";
        /// Milliseconds from the job's start to its first chunk.
        pub const FIRST_AUDIO_MS: &str = "first_audio_ms";
        /// Tokens of input text the model read.
        pub const INPUT_TOKENS: &str = "input_tokens";
    }

    /// The task's specification.
    pub const SPEC: TaskSpec = TaskSpec {
        name: TASK,
        params: &[
            param::INPUT,
            param::VOICE,
            param::INSTRUCTIONS,
            param::SPEED,
            param::SAMPLE_RATE,
        ],
        binary_params: &[],
        events: &[event::ARTIFACT],
        end_keys: &[
            end::AUDIO_SECONDS,
            end::SAMPLE_RATE,
            end::FIRST_AUDIO_MS,
            end::INPUT_TOKENS,
        ],
        stop_reasons: &[],
    };
}

/// Every standard task with a route.
pub const STANDARD: &[TaskSpec] = &[
    text_generation::SPEC,
    embedding::SPEC,
    transcription::SPEC,
    image::GENERATION_SPEC,
    image::TO_IMAGE_SPEC,
    image::INPAINTING_SPEC,
    rerank::SPEC,
    text_to_speech::SPEC,
];

/// The specification of standard task `name`, if it is one.
pub fn spec(name: &str) -> Option<&'static TaskSpec> {
    STANDARD.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_params_are_params_and_names_are_unique() {
        for spec in STANDARD {
            for binary in spec.binary_params {
                assert!(spec.params.contains(binary), "{}: {binary}", spec.name);
            }
            assert_eq!(STANDARD.iter().filter(|s| s.name == spec.name).count(), 1);
        }
        assert_eq!(spec("transcription").unwrap().binary_params, ["audio"]);
        assert_eq!(
            spec("rerank").unwrap().end_keys,
            ["prompt_tokens", "truncated"]
        );
        assert!(spec("nope").is_none());
    }
}

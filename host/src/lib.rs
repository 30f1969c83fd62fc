//! rbee-host: a daemon that serves one plugin worker (LLM, Stable Diffusion, embeddings, ...)
//! over HTTP. The host owns the HTTP API, SSE streaming, the job queue, device init and plugin
//! loading; the worker types live in plugins built against `rbee-plugin-api`.

pub mod cli;
pub mod cpu_features;
pub mod device;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod heartbeat;
pub mod host_services;
pub mod job_event;
pub mod jobs;
pub mod loader;
pub mod metrics;
pub mod plugins_cmd;
pub mod probe;
pub mod readiness;
pub mod serve;
pub mod server;
pub mod sink;

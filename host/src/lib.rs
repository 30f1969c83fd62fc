//! rbee-host: a daemon that serves plugin workers (LLM, Stable Diffusion, embeddings, ...)
//! over HTTP, one model or many, loaded on demand. The host owns the HTTP API, SSE streaming, the job queue, device init and plugin
//! loading; the worker types live in plugins built against `rbee-plugin-api`.

pub mod cli;
pub mod command;
pub mod config;
pub mod error;
pub mod fleet;
pub mod isolate;
pub mod jobs;
pub mod plugin;
pub mod serve;
pub mod server;
pub mod services;
pub mod worker;

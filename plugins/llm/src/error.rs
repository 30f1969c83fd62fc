//! The plugin's own error type and its mapping onto the API's [`PluginError`].

use rbee_plugin_api::PluginError;
use rbee_plugin_kit::error;
use std::path::PathBuf;

/// Everything that can go wrong inside the llm plugin.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model could not be found, read or understood.
    #[error("cannot load model '{}': {reason}", path.display())]
    ModelLoad {
        /// The file or directory at fault (or the hub reference).
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The requested device cannot be used by this build.
    #[error("{0}")]
    Device(String),
    /// A job parameter is out of range or cannot be honoured with this model.
    #[error("{message}")]
    InvalidParam {
        /// The parameter at fault.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// Tokenizing or detokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Running the model failed.
    #[error("inference: {0}")]
    Inference(String),
    /// A tensor operation of candle's failed while running the model.
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
}

impl LlmError {
    /// An `invalid_params` error for `field`; the message starts with the field's name.
    pub fn invalid_param(field: &str, message: impl std::fmt::Display) -> Self {
        Self::InvalidParam {
            field: field.to_string(),
            message: format!("{field}: {message}"),
        }
    }

    /// A `model_load` error naming `path` and the reason.
    pub fn model_load(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::ModelLoad {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<LlmError> for PluginError {
    fn from(error: LlmError) -> Self {
        match &error {
            LlmError::ModelLoad { .. } => error::model_load(error.to_string()),
            LlmError::Device(_) => error::device(error.to_string()),
            LlmError::InvalidParam { field, message } => {
                PluginError::invalid_param(field, message.as_str())
            }
            LlmError::Tokenizer(_) | LlmError::Inference(_) | LlmError::Candle(_) => {
                error::internal(&error)
            }
        }
    }
}

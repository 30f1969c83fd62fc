//! The `rerank` task's parameters: read into one type, whose JSON Schema the manifest publishes.

use rbee_plugin_api::{PluginError, tasks::rerank::param};
use schemars::JsonSchema;
use serde::Deserialize;

/// The most documents one job may score.
pub const MAX_DOCUMENTS: usize = 1024;

/// The parameters of one `rerank` job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "rerank parameters")]
pub struct RerankParams {
    /// What the documents are ranked against; kept whole (it must fit the model's window).
    #[schemars(length(min = 1))]
    pub query: String,
    /// The texts to score, one `score` event each; a document longer than the model's window
    /// is truncated and listed in the end details' `truncated`.
    #[schemars(length(min = 1, max = MAX_DOCUMENTS))]
    pub documents: Vec<String>,
}

impl RerankParams {
    /// Reads and checks a job's parameters, naming the field at fault.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let params: Self = rbee_plugin_kit::params::parse(json)?;
        if params.query.trim().is_empty() {
            return Err(PluginError::invalid_param(
                param::QUERY,
                "query is empty: give the text to rank the documents against",
            ));
        }
        match params.documents.len() {
            0 => Err(PluginError::invalid_param(
                param::DOCUMENTS,
                "documents is an empty list: give at least one text",
            )),
            n if n > MAX_DOCUMENTS => Err(PluginError::invalid_param(
                param::DOCUMENTS,
                format!("documents has {n} texts; at most {MAX_DOCUMENTS} are allowed per job"),
            )),
            _ => Ok(params),
        }
    }
}

/// The manifest's parameters schema.
pub fn schema() -> String {
    rbee_plugin_kit::params::schema::<RerankParams>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn field_of(params: Value) -> String {
        let error = RerankParams::parse(&params.to_string()).unwrap_err();
        assert_eq!(error.code.as_str(), "invalid_params");
        error.field.into_option().unwrap().into()
    }

    #[test]
    fn bad_parameters_name_their_field() {
        assert_eq!(field_of(json!({"documents": ["a"]})), "query");
        assert_eq!(field_of(json!({"query": " ", "documents": ["a"]})), "query");
        assert_eq!(field_of(json!({"query": "q"})), "documents");
        assert_eq!(
            field_of(json!({"query": "q", "documents": []})),
            "documents"
        );
        assert_eq!(
            field_of(json!({"query": "q", "documents": [3]})),
            "documents[0]"
        );
        let many = vec!["x"; MAX_DOCUMENTS + 1];
        assert_eq!(
            field_of(json!({"query": "q", "documents": many})),
            "documents"
        );
        assert_eq!(
            field_of(json!({"query": "q", "documents": ["a"], "top_n": 1})),
            "top_n"
        );
        let fine = RerankParams::parse(r#"{"query": "q", "documents": ["a", ""]}"#).unwrap();
        assert_eq!(fine.documents, ["a", ""]);
    }

    #[test]
    fn the_schema_requires_query_and_documents() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(schema["required"], json!(["query", "documents"]));
        assert_eq!(schema["properties"]["documents"]["maxItems"], MAX_DOCUMENTS);
    }
}

//! Each model's job parameters, from its plugin's manifest (`params_schema`), as component
//! schemas: `Params.<model id>`, with the schema's own `$defs` moved beside it (as
//! `Params.<model id>.<name>`) so that its references resolve inside the document.

use super::answers::component;
use crate::{fleet::Fleet, worker::WorkerState};
use serde_json::{Map, Value, json};

/// The component name of `model`'s parameters: `Params.` and its id, with every character a
/// component name may not hold (`/`, `:`, ...) as `_`.
pub fn name(model: &WorkerState) -> String {
    let id: String = model
        .id()
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .collect();
    format!("Params.{id}")
}

/// The schema of parameter `param` of `task` (or of a part of it: `messages/items`), as the
/// plugins of the models serving `task` declare it (any of theirs when they differ); anything
/// when no model serves the task or none declares it.
pub fn of_task(fleet: &Fleet, task: &str, param: &str) -> Value {
    let pointer = format!("/properties/{param}");
    let declared: Vec<Value> = fleet
        .models()
        .iter()
        .filter(|model| model.serves(task))
        .filter(|model| model.manifest["params_schema"].pointer(&pointer).is_some())
        .map(|model| json!({"$ref": format!("#/components/schemas/{}{pointer}", name(model))}))
        .collect();
    match declared.len() {
        0 => json!({}),
        1 => declared.into_iter().next().unwrap_or_default(),
        _ => json!({"anyOf": declared}),
    }
}

/// A reference to `model`'s parameters.
pub fn reference(model: &WorkerState) -> Value {
    component(&name(model))
}

/// Whether `model`'s plugin needs some parameter (so that a job without `params` is refused).
pub fn required(model: &WorkerState) -> bool {
    let schema = &model.manifest["params_schema"];
    schema["required"].as_array().is_some_and(|r| !r.is_empty())
        || schema.get("oneOf").is_some()
        || schema.get("anyOf").is_some()
}

/// Every model's parameters and their definitions, by component name.
pub fn schemas(fleet: &Fleet) -> Vec<(String, Value)> {
    let mut schemas = Vec::new();
    for model in fleet.models() {
        let prefix = name(model);
        let mut schema = match &model.manifest["params_schema"] {
            Value::Object(schema) => schema.clone(),
            _ => Map::new(),
        };
        schema.remove("$schema");
        let definitions = match schema.remove("$defs") {
            Some(Value::Object(definitions)) => definitions,
            _ => Map::new(),
        };
        let mut schema = Value::Object(schema);
        rewrite_refs(&mut schema, &prefix);
        schemas.push((prefix.clone(), schema));
        for (definition, mut schema) in definitions {
            rewrite_refs(&mut schema, &prefix);
            schemas.push((format!("{prefix}.{definition}"), schema));
        }
    }
    schemas
}

/// Points every `#/$defs/NAME` reference inside `schema` at the component `PREFIX.NAME`.
fn rewrite_refs(schema: &mut Value, prefix: &str) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value.as_str()) {
                    ("$ref", Some(target)) => {
                        if let Some(definition) = target.strip_prefix("#/$defs/") {
                            *value = format!("#/components/schemas/{prefix}.{definition}").into();
                        }
                    }
                    _ => rewrite_refs(value, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_to_definitions_point_at_their_components() {
        let mut schema = json!({
            "properties": {
                "task": {"$ref": "#/$defs/Task"},
                "list": {"items": [{"$ref": "#/$defs/Item"}], "$ref": "elsewhere.json"},
            },
        });
        rewrite_refs(&mut schema, "Params.whisper");
        assert_eq!(
            schema,
            json!({
                "properties": {
                    "task": {"$ref": "#/components/schemas/Params.whisper.Task"},
                    "list": {"items": [{"$ref": "#/components/schemas/Params.whisper.Item"}], "$ref": "elsewhere.json"},
                },
            })
        );
    }
}

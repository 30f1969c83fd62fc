use super::*;
use serde_json::json;

/// README.md's row for `route`: its path, then its implemented, harmless and refused fields.
fn readme_row(route: &Route) -> String {
    let names = |wanted: fn(&Handling) -> bool| {
        let names: Vec<String> = route
            .fields
            .iter()
            .filter(|f| wanted(&f.handling))
            .map(|f| format!("`{}`", f.name))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    format!(
        "| `{}` | {} | {} | {} |",
        route.path,
        names(|h| *h == Handling::Implemented),
        names(|h| *h == Handling::Harmless),
        names(|h| matches!(h, Handling::Refused { .. }))
    )
}

#[test]
fn readme_lists_every_routes_fields_as_the_code_handles_them() {
    let readme = include_str!("../../../../../README.md");
    for route in ROUTES {
        let expected = readme_row(route);
        let prefix = format!("| `{}` | ", route.path);
        let found: Vec<&str> = readme
            .lines()
            .filter(|line| line.starts_with(&prefix) && line.matches(" | ").count() == 3)
            .collect();
        assert_eq!(
            found,
            [expected.as_str()],
            "README.md's field table must have this row for {}:\n{expected}",
            route.path
        );
    }
}

#[test]
fn no_route_lists_a_field_twice() {
    for route in ROUTES {
        for (i, field) in route.fields.iter().enumerate() {
            assert!(
                route.fields[i + 1..].iter().all(|f| f.name != field.name),
                "{} lists {} twice",
                route.path,
                field.name
            );
        }
    }
}

fn refusal(route: &Route, name: &str, value: Value) -> Option<String> {
    route.check(name, &value).err().map(|e| format!("{e:?}"))
}

#[test]
fn refused_fields_pass_only_when_absent_null_or_neutral() {
    for (name, value) in [
        ("n", json!(2)),
        ("presence_penalty", json!(0.5)),
        ("response_format", json!({"type": "json_object"})),
        ("logit_bias", json!({"50256": -100})),
        ("tool_choice", json!("auto")),
        ("parallel_tool_calls", json!(false)),
        ("modalities", json!(["text", "audio"])),
    ] {
        let error = refusal(&CHAT, name, value).expect(name);
        assert!(
            error.contains("status: 400") && error.contains(&format!("field: Some(\"{name}\")")),
            "{error}"
        );
    }
    for (name, value) in [
        ("n", json!(1)),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0.0)),
        ("logprobs", json!(false)),
        ("tools", json!([])),
        ("response_format", json!({"type": "text"})),
        ("audio", Value::Null),
    ] {
        assert_eq!(refusal(&CHAT, name, value), None, "{name}");
    }
}

#[test]
fn harmless_and_implemented_fields_pass_and_unknown_ones_are_refused() {
    for name in ["user", "metadata", "store", "temperature", "top_k"] {
        assert_eq!(refusal(&CHAT, name, json!("x")), None, "{name}");
    }
    let error = refusal(&CHAT, "cache_prompt", json!(true)).unwrap();
    assert!(error.contains("unknown field 'cache_prompt'"), "{error}");
    assert!(refusal(&EMBEDDINGS, "dimensions", json!(64)).is_some());
}

#[test]
fn multipart_values_are_read_as_json_where_they_can_be() {
    assert_eq!(form_value("false"), json!(false));
    assert_eq!(form_value("100"), json!(100));
    assert_eq!(form_value("png"), json!("png"));
    assert_eq!(
        refusal(&TRANSCRIPTIONS, "stream", form_value("false")),
        None
    );
    assert!(refusal(&TRANSCRIPTIONS, "stream", form_value("true")).is_some());
    assert_eq!(
        refusal(&IMAGE_EDITS, "output_format", form_value("png")),
        None
    );
    assert!(refusal(&IMAGE_EDITS, "output_format", form_value("webp")).is_some());
}

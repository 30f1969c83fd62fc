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
        ("presence_penalty", json!(0.5)),
        ("logit_bias", json!({"50256": -100})),
        ("functions", json!([{"name": "now"}])),
        ("function_call", json!("auto")),
        ("modalities", json!(["text", "audio"])),
    ] {
        let error = refusal(&CHAT, name, value).expect(name);
        assert!(
            error.contains("status: 400") && error.contains(&format!("field: Some(\"{name}\")")),
            "{error}"
        );
    }
    for (name, value) in [
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0.0)),
        ("functions", json!([])),
        ("function_call", json!("none")),
        ("audio", Value::Null),
    ] {
        assert_eq!(refusal(&CHAT, name, value), None, "{name}");
    }
    let error = refusal(&CHAT, "functions", json!([{"name": "now"}])).unwrap();
    assert!(error.contains("send tools"), "{error}");
    assert!(refusal(&COMPLETIONS, "best_of", json!(2)).is_some());
    assert_eq!(refusal(&COMPLETIONS, "best_of", json!(1)), None);
}

#[test]
fn harmless_and_implemented_fields_pass_and_unknown_ones_are_refused() {
    for name in ["user", "metadata", "store", "temperature", "top_k"] {
        assert_eq!(refusal(&CHAT, name, json!("x")), None, "{name}");
    }
    let implemented = [
        "n",
        "logprobs",
        "top_logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "grammar",
    ];
    for name in implemented {
        assert_eq!(refusal(&CHAT, name, json!(2)), None, "{name}");
    }
    for name in ["n", "logprobs", "response_format", "grammar"] {
        assert_eq!(refusal(&COMPLETIONS, name, json!(2)), None, "{name}");
    }
    assert!(
        refusal(&COMPLETIONS, "tools", json!([])).is_some(),
        "chat only"
    );
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

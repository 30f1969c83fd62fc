//! `rbee-host plugins list` and `inspect`: the plugins found, what they say about themselves,
//! and whether this host can load them.

use super::{discovery::SearchDirs, loader};
use crate::error::HostError;
use serde_json::{Value, json};
use std::{collections::HashMap, path::PathBuf};

/// Prints a table of the plugins found, in search order.
pub fn list(search: &SearchDirs) -> Result<(), HostError> {
    let candidates = search.candidates();
    let mut first_path: HashMap<&str, &std::path::Path> = HashMap::new();
    let mut rows = vec![
        [
            "ID",
            "KIND",
            "BACKEND",
            "VERSION",
            "API",
            "PATH",
            "COMPATIBLE",
        ]
        .map(String::from),
    ];
    for candidate in &candidates {
        let path = candidate.path.display().to_string();
        let duplicate = first_path.insert(&candidate.id, &candidate.path);
        let row = match (loader::probe_and_open(&candidate.path), duplicate) {
            (Ok(plugin), duplicate) => {
                let m = &plugin.manifest;
                let verdict = match duplicate {
                    Some(other) => format!(
                        "no: the id '{}' is also at {}",
                        candidate.id,
                        other.display()
                    ),
                    None if m.id.as_str() != candidate.id => {
                        format!("no: the file declares id '{}'", m.id)
                    }
                    None => "yes".to_string(),
                };
                [
                    m.id.to_string(),
                    m.kind.to_string(),
                    m.backend.to_string(),
                    m.version.to_string(),
                    m.api_version.to_string(),
                    path,
                    verdict,
                ]
            }
            (Err(reason), _) => {
                let dash = || "-".to_string();
                [
                    candidate.id.clone(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    path,
                    format!("no: {reason}"),
                ]
            }
        };
        rows.push(row);
    }
    if candidates.is_empty() {
        let searched: Vec<String> = search
            .dirs()
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        println!(
            "no plugins found in {} (build them with `cargo xtask plugins`)",
            searched.join(", ")
        );
        return Ok(());
    }
    print_table(&rows);
    Ok(())
}

fn print_table(rows: &[[String; 7]]) {
    let mut widths = [0; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| match i {
                6 => cell.clone(),
                _ => format!("{cell:width$}"),
            })
            .collect();
        println!("{}", cells.join("  "));
    }
}

/// Prints one plugin's manifest as JSON with the compatibility verdict; an incompatible plugin
/// is reported (exit code 1) with the reason.
pub fn inspect(plugin: &str, search: &SearchDirs) -> Result<(), HostError> {
    let path = match PathBuf::from(plugin) {
        path if path.is_file() => path,
        _ => search.find(plugin)?.path,
    };
    let opened = loader::probe_and_open(&path)?;
    let m = &opened.manifest;
    let report = json!({
        "path": path.display().to_string(),
        "id": m.id.as_str(),
        "kind": m.kind.as_str(),
        "backend": m.backend.as_str(),
        "version": m.version.as_str(),
        "description": m.description.as_str(),
        "api_version": m.api_version.as_str(),
        "host_api_version": loader::host_api_version(),
        "compatible": true,
        "tasks": m.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "default_model": m.default_model.as_str(),
        "required_cpu_features": m.required_cpu_features.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "params_schema": serde_json::from_str::<Value>(&m.params_schema_json).unwrap_or(Value::Null),
        "capabilities": m.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    Ok(())
}

//! `rbee-host plugins list`: every plugin found, and whether this host can load it.

use crate::{discovery::SearchDirs, error::HostError, loader};
use std::collections::HashMap;

/// Prints a table of the plugins found, in search order.
pub fn list(search: &SearchDirs) -> Result<(), HostError> {
    let candidates = search.candidates();
    let mut first_path: HashMap<&str, &std::path::Path> = HashMap::new();
    let mut rows = vec![["ID", "KIND", "BACKEND", "VERSION", "API", "PATH", "COMPATIBLE"].map(String::from)];
    for candidate in &candidates {
        let path = candidate.path.display().to_string();
        let duplicate = first_path.insert(&candidate.id, &candidate.path);
        let row = match (loader::open(&candidate.path), duplicate) {
            (Ok(plugin), duplicate) => {
                let m = &plugin.manifest;
                let verdict = match duplicate {
                    Some(other) => format!("no: the id '{}' is also at {}", candidate.id, other.display()),
                    None if m.id.as_str() != candidate.id => format!("no: the file declares id '{}'", m.id),
                    None => "yes".to_string(),
                };
                [m.id.to_string(), m.kind.to_string(), m.backend.to_string(), m.version.to_string(), m.api_version.to_string(), path, verdict]
            }
            (Err(reason), _) => {
                let dash = || "-".to_string();
                [candidate.id.clone(), dash(), dash(), dash(), dash(), path, format!("no: {reason}")]
            }
        };
        rows.push(row);
    }
    if candidates.is_empty() {
        let searched: Vec<String> = search.dirs().iter().map(|d| d.path.display().to_string()).collect();
        println!("no plugins found in {} (build them with `cargo xtask plugins`)", searched.join(", "));
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

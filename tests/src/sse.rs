//! A minimal blocking Server-Sent Events reader.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};

/// One event: its name and JSON data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` name.
    pub name: String,
    /// The `data:` payload, parsed.
    pub data: Value,
}

/// The text a job streamed: its `token` events' text, in order.
pub fn streamed_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.name == "token")
        .map(|e| e.data["text"].as_str().unwrap_or_default())
        .collect()
}

/// Events read one by one from a streaming response.
pub struct SseStream {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl SseStream {
    /// Reads events from `body`.
    pub fn new(body: impl Read + Send + 'static) -> Self {
        Self {
            reader: BufReader::new(Box::new(body)),
        }
    }

    /// All remaining events, up to the end of the stream.
    pub fn collect_all(self) -> Vec<SseEvent> {
        self.collect()
    }
}

impl Iterator for SseStream {
    type Item = SseEvent;

    fn next(&mut self) -> Option<SseEvent> {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(SseEvent {
                    name: std::mem::take(&mut name),
                    data,
                });
            }
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
    }
}

//! Human-readable or JSON-lines output.

use std::io::Write;

use cairn_client::FetchedRecord;
use serde_json::{json, Value};

pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Prints one line; a closed stdout (e.g. `| head`) ends the program quietly.
    pub fn line(&self, s: &str) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{s}").is_err() {
            std::process::exit(0);
        }
    }

    /// Writes bytes as they are (formatted or raw records); a closed stdout ends the program
    /// quietly.
    pub fn bytes(&self, b: &[u8]) {
        let mut out = std::io::stdout().lock();
        if out.write_all(b).is_err() {
            std::process::exit(0);
        }
    }

    pub fn value(&self, v: &Value) {
        self.line(&v.to_string());
    }

    pub fn flush(&self) {
        let _ = std::io::stdout().flush();
    }

    pub fn record(&self, topic: &str, partition: u32, r: &FetchedRecord) {
        if self.json {
            let headers: serde_json::Map<String, Value> =
                r.headers.iter().map(|h| (h.key.clone(), bytes_json(&h.value))).collect();
            self.value(&json!({
                "topic": topic,
                "partition": partition,
                "offset": r.offset,
                "key": if r.key.is_empty() { Value::Null } else { bytes_json(&r.key) },
                "value": bytes_json(&r.value),
                "timestamp": r.timestamp_ms,
                "headers": headers,
            }));
        } else {
            let key =
                if r.key.is_empty() { String::new() } else { format!(" key={}", String::from_utf8_lossy(&r.key)) };
            self.line(&format!("{topic}/{partition}@{}{key}: {}", r.offset, String::from_utf8_lossy(&r.value)));
        }
    }
}

/// UTF-8 bytes as a JSON string; anything else as `{"hex": "..."}`.
pub fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

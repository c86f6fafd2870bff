//! Prints each YAML file given on the command line as one JSON line, read the way StackStorm
//! reads it (`{"file": .., "value": ..}` or `{"file": .., "error": ..}`). Used by
//! `tools/yaml_parity.py` to compare this project's YAML reading with PyYAML's.

use st2_core::yaml::{YamlLimits, parse_bytes};

fn main() {
    let limits = YamlLimits::default();
    for path in std::env::args().skip(1) {
        let line = match std::fs::read(&path) {
            Ok(bytes) => match parse_bytes(&bytes, &limits) {
                Ok(doc) => serde_json::json!({"file": path, "value": doc.to_json()}),
                Err(e) => serde_json::json!({"file": path, "error": e.to_string()}),
            },
            Err(e) => serde_json::json!({"file": path, "error": e.to_string()}),
        };
        println!("{line}");
    }
}

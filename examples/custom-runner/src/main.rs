//! Run an action whose runner is written in Rust and print its result:
//! `cargo run -p example-custom-runner -- "the text to count"`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, json};
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "The quick brown fox\njumps over the lazy dog".to_owned());
    // An in-memory store: nothing is kept after the program ends.
    let store = SqliteStore::open(SqliteOptions::memory()).await?;
    // The engine with the text_tools pack and the word-count runner (see src/lib.rs).
    let engine = example_custom_runner::start(Arc::new(store)).await?;

    let mut parameters = Map::new();
    parameters.insert("text".to_owned(), json!(text));
    let execution = engine
        .run("text_tools.count_words", parameters, Map::new())
        .await?;
    let finished = engine.wait(&execution.id, Duration::from_secs(30)).await?;

    println!(
        "{} {} ({})",
        finished.action_ref, finished.status, finished.id
    );
    println!("{}", serde_json::to_string_pretty(&finished.result)?);
    engine.shutdown().await;
    Ok(())
}

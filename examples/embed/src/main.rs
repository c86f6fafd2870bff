//! Dispatch a `hello_st2.event` into an embedded engine and print the execution its rule
//! started: `cargo run -p example-embed -- "Grace Hopper"`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Ada Lovelace".to_owned());
    // A fresh database each run; point it at a lasting file to keep the history.
    let data = tempfile::tempdir()?;
    let execution = example_embed::greet(&data.path().join("st2.db"), &name).await?;

    println!(
        "{} {} ({})",
        execution.action_ref, execution.status, execution.id
    );
    println!("{}", serde_json::to_string_pretty(&execution.result)?);
    Ok(())
}

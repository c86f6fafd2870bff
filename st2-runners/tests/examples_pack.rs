//! StackStorm's `examples` pack, run unchanged: its action metadata and chain definitions
//! (from the workplace corpus) with the scripts written for this project
//! (`examples/st2-examples-scripts`), laid over each other in a temporary pack directory and
//! run through the engine with the built-in runners.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use st2_core::engine::{Engine, EngineSettings};
use st2_core::runner::RunnerRegistry;
use st2_core::store::sqlite::{SqliteOptions, SqliteStore};
use st2_core::store::{ExecutionRecord, ExecutionStatus, Page, Store, TriggerInstanceFilter};

const WAIT: Duration = Duration::from_secs(60);

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The corpus copy of StackStorm's examples pack (CI has `../shared` beside the checkout).
fn corpus_pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/packs/examples")
}

struct Examples {
    engine: Engine,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn examples() -> Examples {
    let dir = tempfile::tempdir().expect("tempdir");
    let pack = dir.path().join("examples");
    assert!(
        corpus_pack().join("pack.yaml").is_file(),
        "the corpus is beside the checkout: {}",
        corpus_pack().display()
    );
    common::copy_dir(&corpus_pack(), &pack);
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/st2-examples-scripts/actions"),
        &pack.join("actions"),
    );
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).expect("mkdir");
    // Dynamic config values: the key from the datastore, the secret decrypted (the schema
    // marks `api_secret` secret).
    std::fs::write(
        configs.join("examples.yaml"),
        "api_key: \"{{ st2kv.system.examples_key }}\"\n\
         api_secret: \"{{ st2kv.system.examples_secret }}\"\n",
    )
    .expect("config");
    // One action of our own beside the pack's: it shows the config it gets.
    std::fs::write(
        pack.join("actions/show_config.yaml"),
        "name: show_config\nrunner_type: python-script\nentry_point: show_config.py\n",
    )
    .expect("action");
    std::fs::write(
        pack.join("actions/show_config.py"),
        "from st2common.runners.base_action import Action\n\n\n\
         class ShowConfig(Action):\n    def run(self):\n        return self.config\n",
    )
    .expect("script");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::memory())
            .await
            .expect("store"),
    );
    let mut runners = RunnerRegistry::new();
    st2_runners::register_builtin(&mut runners).expect("register");
    runners
        .register(
            "python-script",
            st2_runners::PythonRunner::new(st2_runners::PythonSettings {
                runtime_dir: dir.path().join("python-runtime"),
                ..st2_runners::PythonSettings::default()
            }),
        )
        .expect("register python-script");
    let engine = Engine::builder()
        .store(store.clone())
        .pack_dir(pack)
        .configs_dir(configs)
        .runners(runners)
        .crypto_key(st2_core::crypto::CryptoKey::generate().expect("a key"))
        .settings(EngineSettings {
            heartbeat: Duration::from_millis(200),
            idle_poll: Duration::from_millis(100),
            ..EngineSettings::default()
        })
        .start()
        .await
        .expect("engine starts");
    Examples {
        engine,
        store,
        _dir: dir,
    }
}

async fn run(engine: &Engine, action: &str, parameters: Value) -> ExecutionRecord {
    let started = engine
        .run(action, params(parameters), Map::new())
        .await
        .unwrap_or_else(|e| panic!("{action}: {e}"));
    engine.wait(&started.id, WAIT).await.expect("finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_actions() {
    let Examples {
        engine,
        store,
        _dir,
    } = examples().await;

    let script = run(
        &engine,
        "examples.local_script_runner_print_to_stdout_and_stderr",
        json!({"count": 4, "sleep_delay": 0}),
    )
    .await;
    assert_eq!(
        script.status,
        ExecutionStatus::Succeeded,
        "{}",
        script.result
    );
    assert_eq!(
        script.result["stdout"],
        json!("stdout line 2\nstdout line 4")
    );
    assert_eq!(
        script.result["stderr"],
        json!("stderr line 1\nstderr line 3")
    );

    let command = run(
        &engine,
        "examples.local_command_runner_print_to_stdout_and_stderr",
        json!({"count": 3, "sleep_delay": 0}),
    )
    .await;
    assert_eq!(
        command.status,
        ExecutionStatus::Succeeded,
        "{}",
        command.result
    );
    assert_eq!(command.result["stdout"], json!("stdout line 2"));
    assert_eq!(
        command.result["stderr"],
        json!("stderr line 1\nstderr line 3")
    );

    let env = run(&engine, "examples.env_reader", json!({})).await;
    assert_eq!(env.status, ExecutionStatus::Succeeded, "{}", env.result);
    let stdout = env.result["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("ST2_ACTION_PACK_NAME=examples"), "{stdout}");
    assert!(
        stdout.contains(&format!("ST2_ACTION_EXECUTION_ID={}", env.id)),
        "{stdout}"
    );

    // local-notify: its on-complete notification goes to the slack route.
    let notified = run(&engine, "examples.local-notify", json!({"cmd": "echo hi"})).await;
    assert_eq!(
        notified.status,
        ExecutionStatus::Succeeded,
        "{}",
        notified.result
    );
    assert_eq!(notified.result["stdout"], json!("hi"));
    let filter = TriggerInstanceFilter {
        trigger: Some("core.st2.generic.notifytrigger".to_owned()),
        ..TriggerInstanceFilter::default()
    };
    let mut instances = Vec::new();
    for _ in 0..200 {
        instances = store
            .trigger_instances()
            .list(&filter, Page::all())
            .await
            .expect("list")
            .items;
        if !instances.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(instances.len(), 1);
    let payload = &instances[0].payload;
    assert_eq!(payload["route"], json!("slack"));
    assert_eq!(payload["execution_id"], json!(notified.id));
    // StackStorm renders notify messages with `action_parameters`, not bare parameter names:
    // `{{cmd}}` is undefined, the render fails and the template is sent as written.
    assert_eq!(
        payload["message"],
        json!(
            "\"@channel: Action run by {{action_context.user}} succeeded. Cmd run was {{cmd}}.\""
        )
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_actions() {
    let Examples {
        engine,
        store: _,
        _dir,
    } = examples().await;

    let prime = run(&engine, "examples.isprime", json!({"value": 7919})).await;
    assert_eq!(prime.status, ExecutionStatus::Succeeded, "{}", prime.result);
    assert_eq!(
        prime.result,
        json!({"result": true, "stdout": "", "stderr": "", "exit_code": 0})
    );
    let not_prime = run(&engine, "examples.isprime", json!({"value": 7917})).await;
    assert_eq!(not_prime.result["result"], json!(false));

    let object = run(&engine, "examples.object_return", json!({})).await;
    assert_eq!(
        object.result["result"],
        json!({"a": "b", "c": {"d": "e", "f": 1, "g": true}})
    );

    let parsed = run(
        &engine,
        "examples.json_string_to_object",
        json!({"json_str": "{\"x\": [1, 2], \"y\": null}"}),
    )
    .await;
    assert_eq!(parsed.result["result"], json!({"x": [1, 2], "y": null}));

    let yaml = run(
        &engine,
        "examples.yaml_string_to_object",
        json!({"yaml_str": "a: 1\nb: [x, y]\n"}),
    )
    .await;
    assert_eq!(yaml.status, ExecutionStatus::Succeeded, "{}", yaml.result);
    assert_eq!(yaml.result["result"], json!({"a": 1, "b": ["x", "y"]}));

    // The pack config from the configs directory, its templates rendered over the datastore,
    // with the schema's default for `region`.
    let datastore = engine.datastore();
    datastore
        .set(
            &st2_core::datastore::KeySelector::System,
            "examples_key",
            st2_core::datastore::KeyWrite {
                value: "key-from-kv".into(),
                ..Default::default()
            },
        )
        .await
        .expect("set");
    datastore
        .set(
            &st2_core::datastore::KeySelector::System,
            "examples_secret",
            st2_core::datastore::KeyWrite {
                value: "secret-from-kv".into(),
                secret: true,
                ..Default::default()
            },
        )
        .await
        .expect("set");
    // The schema marks `api_key` secret too, so the key it names must be a secret: a plain
    // value does not decrypt, and the run fails saying which setting (as StackStorm's does).
    let refused = run(&engine, "examples.show_config", json!({})).await;
    assert_eq!(refused.status, ExecutionStatus::Failed);
    let error = refused.result["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "Failed to render dynamic configuration value for key \"api_key\" with value \
             \"{{ st2kv.system.examples_key }}\" for pack \"examples\" config: "
        ),
        "{error}"
    );
    datastore
        .set(
            &st2_core::datastore::KeySelector::System,
            "examples_key",
            st2_core::datastore::KeyWrite {
                value: "key-from-kv".into(),
                secret: true,
                ..Default::default()
            },
        )
        .await
        .expect("set");
    let shown = run(&engine, "examples.show_config", json!({})).await;
    assert_eq!(shown.status, ExecutionStatus::Succeeded, "{}", shown.result);
    assert_eq!(
        shown.result["result"],
        json!({"api_key": "key-from-kv", "api_secret": "secret-from-kv", "region": "us-east-1"})
    );
    let config = run(&engine, "examples.print_config", json!({})).await;
    assert_eq!(
        config.status,
        ExecutionStatus::Succeeded,
        "{}",
        config.result
    );
    assert_eq!(config.result["result"], json!({"region": "us-east-1"}));
    assert_eq!(
        config.result["stdout"],
        json!("=========\n['api_key', 'api_secret', 'region']\nregion=us-east-1\n=========\n")
    );

    // Output is streamed and kept unstripped, stdout and stderr apart.
    let printed = run(
        &engine,
        "examples.python_runner_print_to_stdout_and_stderr",
        json!({"count": 4, "sleep_delay": 0}),
    )
    .await;
    assert_eq!(
        printed.status,
        ExecutionStatus::Succeeded,
        "{}",
        printed.result
    );
    assert_eq!(
        printed.result["stdout"],
        json!("stdout line 2\nstdout line 4\n")
    );
    assert_eq!(
        printed.result["stderr"],
        json!("stderr line 1\nstderr line 3\n")
    );

    let version = run(
        &engine,
        "examples.python_runner_print_python_version",
        json!({}),
    )
    .await;
    assert_eq!(
        version.status,
        ExecutionStatus::Succeeded,
        "{}",
        version.result
    );
    let stdout = version.result["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("Using Python version: 3."), "{stdout}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_actions() {
    let Examples {
        engine,
        store: _,
        _dir,
    } = examples().await;

    let param = run(
        &engine,
        "examples.echochain-param",
        json!({"input1": "ping"}),
    )
    .await;
    assert_eq!(param.status, ExecutionStatus::Succeeded, "{}", param.result);
    let tasks = param.result["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<_> = tasks.iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, [json!("c1"), json!("c2"), json!("c3")]);
    assert_eq!(tasks[2]["result"]["stdout"], json!("c3 c2 c1, input ping"));
    assert_eq!(param.children.len(), 3);

    let sequential = run(&engine, "examples.chain-sequential", json!({})).await;
    assert_eq!(
        sequential.status,
        ExecutionStatus::Succeeded,
        "{}",
        sequential.result
    );
    assert_eq!(
        sequential.result["published"]["greeting"],
        json!("Lakshmi, All your base are belong to us!")
    );

    // Python actions in a chain, data passed through to_json_string and to_yaml_string.
    let data = run(&engine, "examples.data_jinja_filter", json!({})).await;
    assert_eq!(data.status, ExecutionStatus::Succeeded, "{}", data.result);
    let expected = json!({"a": "b", "c": {"d": "e", "f": 1, "g": true}});
    assert_eq!(data.result["tasks"][1]["result"]["result"], expected);
    assert_eq!(data.result["tasks"][2]["result"]["result"], expected);

    // StackStorm's own example names an on-failure task `c4` it does not define: the chain
    // is refused before any task runs, as StackStorm refuses it.
    let failing = run(&engine, "examples.echochain_task_failure", json!({})).await;
    assert_eq!(
        failing.status,
        ExecutionStatus::Failed,
        "{}",
        failing.result
    );
    let error = failing.result["error"].as_str().unwrap_or_default();
    assert!(error.contains("c4"), "{error}");
    assert!(failing.children.is_empty());
    engine.shutdown().await;
}

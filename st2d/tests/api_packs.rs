//! Pack install and uninstall (`st2 pack install/remove`: a 202 with the id of a
//! `packs.install` / `packs.uninstall` execution whose result names the packs), policy writes,
//! rule triggers replaced through the API, and expired tokens.

mod api;

use std::path::Path;
use std::time::Duration;

use api::App;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Write pack `name` into `dir` (the pack directory itself): one action `greet` printing
/// `says`.
fn write_pack(dir: &Path, name: &str, version: &str, says: &str) {
    std::fs::create_dir_all(dir.join("actions")).expect("pack dirs");
    std::fs::write(
        dir.join("pack.yaml"),
        format!(
            "---\nname: {name}\ndescription: A test pack\nversion: {version}\nauthor: Tester\nemail: t@example.invalid\n"
        ),
    )
    .expect("pack.yaml");
    std::fs::write(
        dir.join("actions/greet.yaml"),
        format!(
            "---\nname: greet\nrunner_type: local-shell-cmd\ndescription: Greets\nenabled: true\nparameters:\n  cmd:\n    default: echo {says}\n"
        ),
    )
    .expect("action");
}

/// Run `git` in `dir` (test fixture repositories).
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=t@example.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// POST `path` with `body`, expect 202 and wait for the execution; returns it.
async fn async_op(app: &App, path: &str, body: Value) -> Value {
    let r = app.call("POST", path, Some(&body.to_string())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["execution_id"]);
    let id = r.json["execution_id"].as_str().expect("execution_id");
    app.engine
        .wait(id, Duration::from_secs(60))
        .await
        .expect("execution completes");
    app.get(&format!("/v1/executions/{id}")).await.json
}

async fn install(app: &App, packs: &[&str]) -> Value {
    async_op(
        app,
        "/v1/packs/install",
        json!({"packs": packs, "force": false, "skip_dependencies": false}),
    )
    .await
}

/// Run `action` and return its stdout.
async fn run(app: &App, action: &str) -> String {
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some(&json!({"action": action}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done["result"]["stdout"].as_str().unwrap_or("").to_owned()
}

/// The entries of the packs directory (no staging directory may be left behind).
fn packs_dir_entries(app: &App) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(app.dir.path().join("packs"))
        .expect("packs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_is_installed_from_a_local_directory_upgraded_and_a_bad_one_changes_nothing() {
    let app = App::new().await;
    let source = tempfile::tempdir().expect("source dir");
    let src = source.path().join("stackstorm-hello");
    write_pack(&src, "hello", "1.0.0", "v1");

    let done = install(&app, &[src.to_str().expect("utf-8")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["action"]["ref"], "packs.install");
    assert_eq!(done["runner"]["name"], "pack-manager");
    assert_eq!(done["result"]["output"]["packs_list"], json!(["hello"]));
    assert_eq!(done["result"]["output"]["warning_list"], json!([]));
    assert_eq!(done["context"]["user"], api::USER);
    // What `st2 pack install` shows next.
    let pack = app.get("/v1/packs/hello").await;
    assert_eq!(pack.status, StatusCode::OK);
    assert_eq!(pack.json["version"], "1.0.0");
    assert_eq!(run(&app, "hello.greet").await, "v1");
    assert_eq!(packs_dir_entries(&app), ["demo", "hello"]);
    assert!(
        app.dir
            .path()
            .join("packs/hello/actions/greet.yaml")
            .is_file()
    );

    // Upgraded from a file:// URL; a config file of the installed pack is kept.
    std::fs::write(app.dir.path().join("packs/hello/config.yaml"), "---\n").expect("config");
    write_pack(&src, "hello", "1.1.0", "v2");
    let done = install(&app, &[&format!("file://{}", src.display())]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(app.get("/v1/packs/hello").await.json["version"], "1.1.0");
    assert_eq!(run(&app, "hello.greet").await, "v2");
    assert!(app.dir.path().join("packs/hello/config.yaml").is_file());

    // A broken version fails with the file at fault and leaves 1.1.0 installed and working.
    std::fs::write(src.join("actions/broken.yaml"), "---\nname: [unclosed\n").expect("bad");
    write_pack(&src, "hello", "2.0.0", "v3");
    let done = install(&app, &[src.to_str().expect("utf-8")]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["result"]["error"].as_str().expect("error");
    assert!(error.contains("Failed to install pack"), "{error}");
    assert!(error.contains("broken.yaml"), "{error}");
    assert_eq!(done["result"]["output"]["packs_list"], json!([]));
    assert_eq!(app.get("/v1/packs/hello").await.json["version"], "1.1.0");
    assert_eq!(run(&app, "hello.greet").await, "v2");
    assert!(
        !app.dir
            .path()
            .join("packs/hello/actions/broken.yaml")
            .exists()
    );
    assert_eq!(packs_dir_entries(&app), ["demo", "hello"]);

    // Installed packs are there after a restart.
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(run(&app, "hello.greet").await, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_is_installed_from_a_git_url_at_a_version_or_its_default_branch() {
    let app = App::new().await;
    let source = tempfile::tempdir().expect("source dir");
    let work = source.path().join("work");
    write_pack(&work, "gitpack", "1.0.0", "one");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "v1"]);
    git(&work, &["tag", "v1.0.0"]);
    write_pack(&work, "gitpack", "2.0.0", "two");
    git(&work, &["commit", "-q", "-am", "v2"]);
    git(&work, &["checkout", "-q", "-b", "dev"]);
    write_pack(&work, "gitpack", "3.0.0-dev", "three");
    git(&work, &["commit", "-q", "-am", "dev"]);
    git(&work, &["checkout", "-q", "main"]);
    let bare = source.path().join("gitpack.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&work)
        .arg(&bare)
        .output()
        .expect("git clone --bare");
    assert!(out.status.success());
    let url = format!("file://{}", bare.display());

    // `=1.0.0` finds the tag `v1.0.0`, as StackStorm does.
    let done = install(&app, &[&format!("{url}=1.0.0")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["output"]["packs_list"], json!(["gitpack"]));
    assert_eq!(app.get("/v1/packs/gitpack").await.json["version"], "1.0.0");
    assert_eq!(run(&app, "gitpack.greet").await, "one");

    // No ref: the default branch.
    let done = install(&app, &[&url]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(run(&app, "gitpack.greet").await, "two");

    // A branch.
    let done = install(&app, &[&format!("{url}=dev")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(run(&app, "gitpack.greet").await, "three");

    // `#ref` names a tag too.
    let done = install(&app, &[&format!("{url}#v1.0.0")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(run(&app, "gitpack.greet").await, "one");

    // An unknown version: a clear error with the versions there are; nothing changes.
    let done = install(&app, &[&format!("{url}=9.9.9")]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["result"]["error"].as_str().expect("error");
    assert!(
        error.contains("\"9.9.9\" is not a valid version, hash, tag or branch"),
        "{error}"
    );
    assert!(error.contains("Available versions are: 1.0.0"), "{error}");
    assert_eq!(run(&app, "gitpack.greet").await, "one");

    // A repository that does not exist.
    let done = install(
        &app,
        &[&format!("file://{}/missing.git", source.path().display())],
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("missing"),
        "{done}"
    );
    assert_eq!(packs_dir_entries(&app), ["demo", "gitpack"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_that_cannot_work_say_why() {
    let app = App::new().await;
    let source = tempfile::tempdir().expect("source dir");

    // Names need the StackStorm Exchange index, which is not there.
    let done = install(&app, &["aws"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["result"]["error"].as_str().expect("error");
    assert!(error.contains("cannot be installed by name"), "{error}");
    assert!(error.contains("git repository URL"), "{error}");

    let missing = source.path().join("nothing-here");
    let done = install(&app, &[missing.to_str().expect("utf-8")]).await;
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("doesn't exist"),
        "{done}"
    );

    let no_manifest = source.path().join("no_manifest");
    std::fs::create_dir_all(no_manifest.join("actions")).expect("dir");
    let done = install(&app, &[no_manifest.to_str().expect("utf-8")]).await;
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("missing a manifest file (pack.yaml)"),
        "{done}"
    );

    let bad_name = source.path().join("bad_name");
    write_pack(&bad_name, "Bad Name", "1.0.0", "x");
    let done = install(&app, &[bad_name.to_str().expect("utf-8")]).await;
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("not a valid ref"),
        "{done}"
    );

    let core = source.path().join("core");
    write_pack(&core, "core", "9.0.0", "x");
    let done = install(&app, &[core.to_str().expect("utf-8")]).await;
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("system pack"),
        "{done}"
    );
    assert!(app.get("/v1/actions/core.greet").await.status == StatusCode::NOT_FOUND);

    let picky = source.path().join("picky");
    write_pack(&picky, "picky", "1.0.0", "picky");
    let manifest = picky.join("pack.yaml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(
        &manifest,
        format!("{text}stackstorm_version: \">=1.0.0, <2.0.0\"\ndependencies:\n  - nowhere\n"),
    )
    .expect("write");
    let done = install(&app, &[picky.to_str().expect("utf-8")]).await;
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("requires StackStorm \">=1.0.0, <2.0.0\""),
        "{done}"
    );
    // `force` installs it anyway; the missing dependency is a warning.
    let r = app
        .call(
            "POST",
            "/v1/packs/install",
            Some(&json!({"packs": [picky], "force": true}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.json["execution_id"].as_str().expect("id");
    let done = app.wait(id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let warnings = &done["result"]["output"]["warning_list"];
    assert!(
        warnings[0].as_str().expect("warning").contains("nowhere"),
        "{warnings}"
    );
    assert_eq!(run(&app, "picky.greet").await, "picky");

    // Bad requests never start an execution.
    for (body, says) in [
        ("{}", "'packs' is a required property"),
        ("{\"packs\": \"x\"}", "\"packs\" must be a list of strings"),
        ("{\"packs\": []}", "at least one pack"),
        ("{\"packs\": [1]}", "list of strings"),
        ("{\"packs\": [\" \"]}", "empty"),
        (
            "{\"packs\": [\"x\"], \"force\": \"yes\"}",
            "\"force\" must be a boolean",
        ),
        ("[1]", "JSON object"),
    ] {
        let r = app.call("POST", "/v1/packs/install", Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.fault().contains(says), "{body}: {}", r.fault());
    }
    let r = app.call("POST", "/v1/packs/uninstall", Some("{}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send(
            "POST",
            "/v1/packs/install",
            &[],
            Some("{\"packs\": [\"x\"]}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(packs_dir_entries(&app), ["demo", "picky"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_are_uninstalled_with_their_content_but_never_system_ones() {
    let app = App::new().await;
    let source = tempfile::tempdir().expect("source dir");
    let src = source.path().join("byebye");
    write_pack(&src, "byebye", "1.0.0", "bye");
    // With a requirements.txt (empty: no index needed) the pack gets its virtualenv.
    std::fs::write(src.join("requirements.txt"), "").expect("requirements");
    assert_eq!(
        install(&app, &[src.to_str().expect("utf-8")]).await["status"],
        "succeeded"
    );
    // Content added through the API to the pack goes with it.
    let rule = json!({
        "name": "hook", "pack": "byebye", "enabled": true,
        "trigger": {"type": "core.st2.webhook", "parameters": {"url": "byebye"}},
        "action": {"ref": "byebye.greet"},
    });
    let r = app.call("POST", "/v1/rules", Some(&rule.to_string())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/v1/webhooks/byebye").await.status, StatusCode::OK);
    let venv = app.dir.path().join("virtualenvs/byebye");
    assert!(venv.join("bin/python").is_file(), "the pack's virtualenv");

    let done = async_op(&app, "/v1/packs/uninstall", json!({"packs": ["byebye"]})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["action"]["ref"], "packs.uninstall");
    assert_eq!(done["result"]["output"]["packs_list"], json!(["byebye"]));
    // What `st2 pack remove` checks next.
    assert_eq!(
        app.get("/v1/packs/byebye").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/actions/byebye.greet").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/rules/byebye.hook").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/webhooks/byebye").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(packs_dir_entries(&app), ["demo"]);
    assert!(!venv.exists(), "the virtualenv goes with the pack");

    // A pack's own rules, sensors and webhook triggers go too.
    assert_eq!(app.get("/v1/webhooks/deploy").await.status, StatusCode::OK);
    let done = async_op(&app, "/v1/packs/uninstall", json!({"packs": ["demo"]})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        app.get("/v1/webhooks/deploy").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/sensortypes/demo.Watcher").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/triggertypes/demo.watched").await.status,
        StatusCode::NOT_FOUND
    );
    let triggers = app.get("/v1/triggers").await.json;
    assert!(!triggers.to_string().contains("deploy"), "{triggers}");

    for (packs, says) in [
        (
            json!(["core"]),
            "Uninstall includes an uninstallable pack - core.",
        ),
        (json!(["packs", "x"]), "uninstallable pack - packs."),
        (json!(["nowhere"]), "pack \"nowhere\" is not installed"),
    ] {
        let done = async_op(&app, "/v1/packs/uninstall", json!({"packs": packs})).await;
        assert_eq!(done["status"], "failed", "{done}");
        let error = done["result"]["error"].as_str().expect("error");
        assert!(error.contains(says), "{error}");
    }
    assert_eq!(
        app.get("/v1/actions/core.local").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/actions/packs.install").await.status,
        StatusCode::OK
    );

    // Gone for good after a restart: the API rule is forgotten with the pack.
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/rules/byebye.hook").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/packs/demo").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_created_replaced_applied_and_deleted() {
    let app = App::new().await;
    let body = json!({
        "name": "local_retry", "pack": "demo", "description": "Retry once",
        "resource_ref": "core.local", "policy_type": "action.retry",
        "parameters": {"retry_on": "failure", "max_retry_count": 1},
    });
    let r = app
        .call("POST", "/v1/policies", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["ref"], "demo.local_retry");
    assert_eq!(r.json["uid"], "policy:demo:local_retry");
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["parameters"]["max_retry_count"], 1);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let r = app
        .call("POST", "/v1/policies", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json["conflict-id"], id.as_str());
    assert_eq!(
        app.get(&format!("/v1/policies/{id}")).await.json["ref"],
        "demo.local_retry"
    );

    // The scheduler applies it at once: a failing run is retried one time.
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some("{\"action\": \"core.local\", \"parameters\": {\"cmd\": \"exit 3\"}}"),
        )
        .await;
    let first = r.json["id"].as_str().expect("id").to_owned();
    assert_eq!(app.wait(&first).await["status"], "failed");
    let mut retried = Value::Null;
    for _ in 0..100 {
        let list = app.get("/v1/executions?action=core.local").await.json;
        if let Some(e) = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["id"] != first.as_str()))
        {
            retried = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        retried["context"]["policies"]["retry"]["applied_policy"], "demo.local_retry",
        "{retried}"
    );

    // PUT by id without a pack keeps the pack; disabling it stops the retries.
    let mut changed = body.clone();
    changed.as_object_mut().expect("object").remove("pack");
    changed["enabled"] = json!(false);
    changed["parameters"] = json!({"retry_on": "timeout"});
    let r = app
        .call(
            "PUT",
            &format!("/v1/policies/{id}"),
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["pack"], "demo");
    assert_eq!(r.json["enabled"], false);
    assert_eq!(
        r.json["parameters"],
        json!({"retry_on": "timeout", "max_retry_count": 2})
    );

    // Bad bodies name the field.
    for (bad, says) in [
        (
            json!({"name": "p", "policy_type": "action.retry", "parameters": {"retry_on": "failure"}}),
            "resource_ref",
        ),
        (
            json!({"name": "p", "resource_ref": "core.local", "policy_type": "action.nothing"}),
            "action.nothing",
        ),
        (
            json!({"name": "p", "resource_ref": "core.local", "policy_type": "action.retry", "parameters": {"retry_on": "sometimes"}}),
            "retry_on",
        ),
        (
            json!({"name": "p", "resource_ref": "core.local", "policy_type": "action.concurrency", "parameters": {"threshold": 1, "extra": 1}}),
            "extra",
        ),
        (
            json!({"name": "p", "resource_ref": "core.local", "policy_type": "action.retry"}),
            "retry_on",
        ),
        (
            json!({"name": 3, "resource_ref": "core.local", "policy_type": "action.retry"}),
            "name",
        ),
        (
            json!({"name": "p", "pack": "core", "resource_ref": "core.local", "policy_type": "action.concurrency", "parameters": {"threshold": 1}}),
            "system level packs",
        ),
        (json!([1]), "JSON object"),
    ] {
        let r = app
            .call("POST", "/v1/policies", Some(&bad.to_string()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.fault().contains(says), "{bad}: {}", r.fault());
    }
    let r = app
        .call(
            "PUT",
            &format!("/v1/policies/{id}"),
            Some("{\"name\": \"x\"}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call("PUT", "/v1/policies/demo.nothing", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("DELETE", "/v1/policies/demo.nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Kept across a restart, then deleted for good.
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    let kept = app.get("/v1/policies/demo.local_retry").await;
    assert_eq!(kept.json["enabled"], false, "{}", kept.text);
    let r = app
        .call("DELETE", "/v1/policies/demo.local_retry", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/v1/policies/demo.local_retry").await.status,
        StatusCode::NOT_FOUND
    );
    let dir = app.stop().await;
    let app = App::in_dir(dir).await;
    assert_eq!(
        app.get("/v1/policies/demo.local_retry").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_moved_to_another_webhook_stops_serving_the_old_one() {
    let app = App::new().await;
    let rule = |url: &str| {
        json!({
            "name": "mover", "pack": "demo", "enabled": true,
            "trigger": {"type": "core.st2.webhook", "parameters": {"url": url}},
            "action": {"ref": "core.noop"},
        })
        .to_string()
    };
    let r = app.call("POST", "/v1/rules", Some(&rule("before"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/v1/webhooks/before").await.status, StatusCode::OK);
    let r = app
        .call("PUT", "/v1/rules/demo.mover", Some(&rule("after")))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/v1/webhooks/after").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/webhooks/before").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app.call("POST", "/v1/webhooks/before", Some("{}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let triggers = app.get("/v1/triggers").await.json;
    let urls: Vec<&Value> = triggers
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["parameters"].get("url"))
        .collect();
    assert!(urls.contains(&&json!("after")), "{triggers}");
    assert!(!urls.contains(&&json!("before")), "{triggers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_told_apart_from_an_unknown_one() {
    let app = App::new().await;
    let now = app.store.clock().now();
    let token = "0123456789abcdef0123456789abcdef";
    app.store
        .tokens()
        .create(&st2_core::store::TokenRecord {
            id: st2_core::store::new_id(),
            token_hash: st2d::server::auth::sha256_hex(token),
            user: api::USER.into(),
            expiry: now - chrono::TimeDelta::seconds(5),
            metadata: Default::default(),
            created_at: now - chrono::TimeDelta::seconds(60),
        })
        .await
        .expect("token");
    let r = app
        .send("GET", "/v1/actions", &[("x-auth-token", token)], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json,
        json!({"faultstring": "Unauthorized - Token has expired."})
    );
    let r = app
        .send(
            "GET",
            &format!("/v1/actions?x-auth-token={token}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.fault(), "Unauthorized - Token has expired.");
    let r = app
        .send(
            "GET",
            "/v1/actions",
            &[("x-auth-token", "ffffffffffffffffffffffffffffffff")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.fault(), "Unauthorized");
    let r = app
        .call(
            "POST",
            "/v1/tokens/validate",
            Some(&json!({"token": token}).to_string()),
        )
        .await;
    assert_eq!(r.json, json!({"valid": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_that_hangs_times_out_or_is_canceled_and_leaves_nothing_behind() {
    let app = App::new().await;
    // A git server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let url = format!("git://127.0.0.1:{port}/silent.git");

    // `st2 run packs.install packs=… timeout=1`.
    let r = app
        .call(
            "POST",
            "/v1/executions",
            Some(
                &json!({"action": "packs.install", "parameters": {"packs": [url], "timeout": 1}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_owned();
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "timeout", "{done}");
    assert!(
        done["result"]["error"]
            .as_str()
            .expect("error")
            .contains("did not finish within the action's timeout"),
        "{done}"
    );

    let r = app
        .call(
            "POST",
            "/v1/packs/install",
            Some(&json!({"packs": [url]}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.json["execution_id"].as_str().expect("id").to_owned();
    for _ in 0..100 {
        if app.get(&format!("/v1/executions/{id}")).await.json["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .call("DELETE", &format!("/v1/executions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.wait(&id).await["status"], "canceled");
    assert_eq!(packs_dir_entries(&app), ["demo"]);
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_upgrading_and_removing_a_pack_announces_its_aliases() {
    use st2_core::engine::EngineEvent;
    let app = App::new().await;
    let mut events = app.engine.subscribe();
    let source = tempfile::tempdir().expect("source dir");
    let src = source.path().join("chatty");
    write_pack(&src, "chatty", "1.0.0", "v1");
    std::fs::create_dir_all(src.join("aliases")).expect("aliases dir");
    std::fs::write(
        src.join("aliases/greet.yaml"),
        "---\nname: greet\npack: chatty\naction_ref: chatty.greet\ndescription: Greet\nformats:\n  - greet\n",
    )
    .expect("alias");
    let mut aliases = Vec::new();
    let mut collect = async |want: usize| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while aliases.len() < want {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(EngineEvent::ActionAlias { verb, alias })) => {
                    aliases.push((verb, alias["ref"].as_str().unwrap_or_default().to_owned()));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("events: {e}"),
                Err(_) => panic!("alias events so far: {aliases:?}"),
            }
        }
        aliases.clone()
    };
    let done = install(&app, &[src.to_str().expect("utf-8")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        collect(1).await,
        [("create".to_owned(), "chatty.greet".to_owned())]
    );
    write_pack(&src, "chatty", "1.1.0", "v2");
    let done = install(&app, &[src.to_str().expect("utf-8")]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        collect(2).await[1],
        ("update".to_owned(), "chatty.greet".to_owned())
    );
    let done = async_op(&app, "/v1/packs/uninstall", json!({"packs": ["chatty"]})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        collect(3).await[2],
        ("delete".to_owned(), "chatty.greet".to_owned())
    );
}

//! `st2d store`: migrate opens (and creates) a database or says why it cannot, gc refuses TTLs
//! StackStorm refuses, copy moves a drained store into an empty one. Exit 0 / 1 / 2.

mod cli;

use cli::{json_lines, st2d};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn migrate_creates_the_database_or_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("data/st2.db");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let url = format!("sqlite://{}", db.display());
    let out = st2d(&["store", "migrate", "--storage", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"backend": "sqlite", "schema": "up to date"})]
    );
    assert!(db.exists());

    // A database path below a regular file cannot be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").expect("write");
    let url = format!("sqlite://{}/st2.db", blocker.display());
    let out = st2d(&["store", "migrate", "--storage", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not-a-dir"), "{}", stderr(&out));

    // A file that is not a database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
    let url = format!("sqlite://{}", garbage.display());
    let out = st2d(&["store", "migrate", "--storage", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));

    let out = st2d(&["store", "migrate", "--storage", "mysql://localhost/st2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("scheme"), "{}", stderr(&out));
}

#[test]
fn gc_and_copy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let from = format!("sqlite://{}", dir.path().join("from.db").display());
    let to = format!("sqlite://{}", dir.path().join("to.db").display());

    let out = st2d(&[
        "store",
        "gc",
        "--storage",
        &from,
        "--trigger-instances-ttl",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("minimum is 1 day"),
        "{}",
        stderr(&out)
    );

    let out = st2d(&["store", "gc", "--storage", &from, "--executions-ttl", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["deleted"]["executions"], 0);

    let out = st2d(&["store", "copy", "--from", &from, "--to", &to]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["copied"]["executions"], 0);
}

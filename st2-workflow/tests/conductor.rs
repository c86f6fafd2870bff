//! The conductor and the simulator on bad input and on the contracts a driver relies on:
//! problems are reported with file and line, runtime expression errors fail the workflow with
//! an error naming the task and the expression, mocks that do not fit are refused, loops are
//! stopped, the state survives a JSON round trip, and published maps are deep-merged.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use st2_workflow::conductor::{Conductor, ConductorState, TaskEvent, Workflow};
use st2_workflow::expression::Evaluator;
use st2_workflow::simulate::{Mocks, Mode, SimulateError, simulate, simulate_limited};
use st2_workflow::spec::WorkflowSpec;
use st2_workflow::status::Status;

fn compile(text: &str) -> Result<Arc<Workflow>, st2_workflow::spec::SpecError> {
    let spec = WorkflowSpec::parse(Path::new("wf.yaml"), text)?;
    Workflow::compile(spec, Evaluator::new())
}

fn run(text: &str, mocks: Value, mode: Mode) -> Value {
    let wf = compile(text).expect("workflow compiles");
    let mocks = Mocks::from_json(&mocks).expect("mocks fit");
    simulate(&wf, mocks, &Map::new(), mode).expect("simulation ends")
}

#[test]
fn invalid_yaml_is_refused_with_a_line() {
    let err =
        compile("version: 1.0\ntasks:\n  t1:\n    action: [unclosed\n").expect_err("bad YAML");
    assert!(err.0[0].line >= 4, "{err}");
    assert!(err.to_string().contains("wf.yaml:"), "{err}");
}

#[test]
fn every_spec_problem_is_reported() {
    let text = "version: 1.0\n\
                tasks:\n  \
                  t1:\n    action: core.noop\n    bogus: 1\n    next:\n      - do: missing\n  \
                  t2:\n    action: core.noop\n    input:\n      x: <% 1 + %>\n";
    let err = compile(text).expect_err("several problems");
    let text = err.to_string();
    assert!(
        text.contains("wf.yaml:5:5") && text.contains("bogus"),
        "{text}"
    );
    assert!(text.contains("\"missing\" is not defined"), "{text}");
    assert!(text.contains("YaqlGrammarException"), "{text}");
}

#[test]
fn join_and_duplicate_key_misuse_is_reported() {
    let text =
        "tasks:\n  t1:\n    action: core.noop\n    join: all\n  t1:\n    action: core.noop\n";
    let err = compile(text).expect_err("duplicate task");
    assert!(err.to_string().contains("duplicate key \"t1\""), "{err}");
    let text = "tasks:\n  a:\n    next:\n      - do: j\n  j:\n    join: 3\n";
    let err = compile(text).expect_err("join count larger than inbound tasks");
    assert!(err.to_string().contains("waits for 3"), "{err}");
}

#[test]
fn runtime_expression_error_fails_the_workflow_naming_task_and_expression() {
    let text = "version: 1.0\ninput:\n  - z: 0\ntasks:\n  t1:\n    action: core.echo\n    input:\n      message: <% 10 / ctx(z) %>\n";
    let out = run(text, json!({}), Mode::Fifo);
    assert_eq!(out["workflow_status"], "failed");
    let errors = out["errors"].as_array().expect("errors list");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["task_id"], "t1");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("<% 10 / ctx(z) %>") && message.contains("ZeroDivisionError"),
        "{message}"
    );
    assert_eq!(out["executions"], json!([]));
}

#[test]
fn with_items_over_a_non_list_fails_the_task() {
    let text = "input:\n  - xs: 3\ntasks:\n  t1:\n    with: <% ctx(xs) %>\n    action: core.echo\n";
    let out = run(text, json!({}), Mode::Wave);
    assert_eq!(out["workflow_status"], "failed");
    assert!(
        out["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not type of list")
    );
}

#[test]
fn mocks_that_do_not_fit_are_refused() {
    let e = Mocks::from_json(&json!({"t1": "ok"})).expect_err("not a list");
    assert!(
        matches!(&e, SimulateError::Mocks(m) if m.contains("t1")),
        "{e}"
    );
    let e = Mocks::from_json(&json!({"t1": [{"status": "great"}]})).expect_err("bad status");
    assert!(e.to_string().contains("t1"), "{e}");
    assert!(Mocks::from_json(&json!([1])).is_err());
}

#[test]
fn an_endless_loop_is_stopped() {
    let text = "tasks:\n  init:\n    action: core.noop\n    next:\n      - do: t1\n  t1:\n    action: core.noop\n    next:\n      - do: t1\n";
    let wf = compile(text).expect("compiles");
    let e = simulate_limited(&wf, Mocks::default(), &Map::new(), Mode::Fifo, 200)
        .expect_err("never ends");
    assert!(e.to_string().contains("200 events"), "{e}");
}

#[test]
fn failure_is_remediated_by_a_real_task_but_not_by_continue() {
    let handled = "tasks:\n  t1:\n    action: core.fail\n    next:\n      - when: <% failed() %>\n        do: cleanup\n  cleanup:\n    action: core.noop\n";
    let out = run(
        handled,
        json!({"t1": [{"status": "failed", "result": {"x": 1}}]}),
        Mode::Fifo,
    );
    assert_eq!(out["workflow_status"], "succeeded");
    assert_eq!(
        out["errors"][0]["message"],
        "Execution failed. See result for details."
    );
    assert_eq!(out["errors"][0]["result"], json!({"x": 1}));
    let unhandled = "tasks:\n  t1:\n    action: core.fail\n    next:\n      - when: <% failed() %>\n        do: continue\n";
    let out = run(
        unhandled,
        json!({"t1": [{"status": "failed", "result": null}]}),
        Mode::Fifo,
    );
    assert_eq!(out["workflow_status"], "failed");
}

#[test]
fn driving_the_conductor_directly_with_a_stored_state() {
    let text = "version: 1.0\n\
        input:\n  - who: world\n\
        tasks:\n  \
          a:\n    action: core.echo message=\"hi <% ctx(who) %>\"\n    next:\n      - publish:\n          - cfg: {x: 1}\n        do: j\n  \
          b:\n    action: core.noop\n    next:\n      - publish:\n          - cfg: {y: 2}\n        do: j\n  \
          j:\n    join: all\n    action: core.noop\n\
        output:\n  - cfg: <% ctx(cfg) %>\n";
    let wf = compile(text).expect("compiles");
    let mut c = Conductor::new(wf.clone());
    c.start(&Map::new(), &Map::new());
    let mut tasks = c.next_tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].id, "a");
    assert_eq!(tasks[0].actions[0].input, json!({"message": "hi world"}));
    for t in tasks.drain(..) {
        // Store and reload the state around every event, as StackStorm does.
        let state: ConductorState =
            serde_json::from_str(&serde_json::to_string(&c.state).expect("serialises"))
                .expect("deserialises");
        c = Conductor::restore(wf.clone(), state);
        let running = TaskEvent::Action {
            status: Status::Running,
            result: Value::Null,
        };
        let done = TaskEvent::Action {
            status: Status::Succeeded,
            result: json!({"ok": true}),
        };
        c.update_task(&t.id, t.route, &running).expect("running");
        c.update_task(&t.id, t.route, &done).expect("succeeded");
    }
    let next = c.next_tasks();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, "j");
    let running = TaskEvent::Action {
        status: Status::Running,
        result: Value::Null,
    };
    let done = TaskEvent::Action {
        status: Status::Succeeded,
        result: Value::Null,
    };
    c.update_task("j", 0, &running).expect("running");
    c.update_task("j", 0, &done).expect("succeeded");
    assert_eq!(c.status(), Some(Status::Succeeded));
    c.render_output();
    // Published maps are deep-merged at the join.
    assert_eq!(
        c.state.output,
        json!({"cfg": {"x": 1, "y": 2}}).as_object().cloned()
    );
    assert!(c.update_task("nope", 0, &done).is_err());
}

fn two_steps() -> (Arc<Workflow>, Conductor) {
    let text = "tasks:\n  t1:\n    action: core.noop\n    next:\n      - when: <% succeeded() %>\n        do: t2\n  t2:\n    action: core.noop\n";
    let wf = compile(text).expect("compiles");
    let mut c = Conductor::new(wf.clone());
    c.start(&Map::new(), &Map::new());
    let tasks = c.next_tasks();
    assert_eq!(tasks.len(), 1);
    let running = TaskEvent::Action {
        status: Status::Running,
        result: Value::Null,
    };
    c.update_task("t1", 0, &running).expect("running");
    (wf, c)
}

#[test]
fn pause_waits_for_active_tasks_and_resume_continues() {
    let (_, mut c) = two_steps();
    c.request_status(Status::Paused).expect("pause accepted");
    assert_eq!(c.status(), Some(Status::Pausing));
    let done = TaskEvent::Action {
        status: Status::Succeeded,
        result: Value::Null,
    };
    c.update_task("t1", 0, &done).expect("succeeded");
    assert_eq!(c.status(), Some(Status::Paused));
    assert!(c.next_tasks().is_empty(), "nothing starts while paused");
    c.request_status(Status::Resuming).expect("resume accepted");
    let next = c.next_tasks();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, "t2");
}

#[test]
fn cancel_waits_for_active_tasks_then_ends_canceled() {
    let (_, mut c) = two_steps();
    c.request_status(Status::Canceled).expect("cancel accepted");
    assert_eq!(c.status(), Some(Status::Canceling));
    let done = TaskEvent::Action {
        status: Status::Succeeded,
        result: Value::Null,
    };
    c.update_task("t1", 0, &done).expect("succeeded");
    assert_eq!(c.status(), Some(Status::Canceled));
    assert!(c.next_tasks().is_empty());
    let refused = c.request_status(Status::Running);
    assert!(refused.is_err(), "a canceled workflow stays canceled");
}

#[test]
fn context_references_before_assignment_are_reported() {
    let text = "input:\n  - a\ntasks:\n  t1:\n    action: core.echo message=<% ctx(a) %>\n    next:\n      - publish:\n          - b: 1\n          - c: <% ctx(b) %>\n        do: t2\n  t2:\n    action: core.echo\n    input:\n      message: <% ctx().c %> <% ctx(typo) %>\n      other: \"{{ ctx('__state') }}\"\n";
    let err = compile(text).expect_err("two bad references");
    let text = err.to_string();
    assert!(
        text.contains("\"typo\" is referenced before assignment"),
        "{text}"
    );
    assert!(text.contains("\"__state\" is private"), "{text}");
    assert_eq!(err.0.len(), 2, "{text}");
    assert_eq!(err.0[0].line, 11, "{text}");
}

#[test]
fn mocks_can_carry_inputs_parent_context_and_a_default_outcome() {
    let text = "input:\n  - who\ntasks:\n  t1:\n    action: core.echo\n    input:\n      message: <% ctx(who) %> by <% ctx().st2.user %>\n";
    let mocks = json!({
        "__inputs__": {"who": "mock"},
        "__context__": {"st2": {"user": "alice"}},
        "__default__": {"status": "failed", "result": {"why": "default"}}
    });
    let out = run(text, mocks, Mode::Wave);
    assert_eq!(
        out["executions"][0]["input"],
        json!({"message": "mock by alice"})
    );
    assert_eq!(out["executions"][0]["result"], json!({"why": "default"}));
    assert_eq!(out["workflow_status"], "failed");
    assert!(Mocks::from_json(&json!({"__inputs__": [1]})).is_err());
}

#[test]
fn a_corrupted_stored_state_does_not_panic() {
    let (wf, c) = two_steps();
    let mut state = serde_json::to_value(&c.state).expect("serialises");
    state["tasks"] = json!({"t1__r0": 99, "t2__r5": 7});
    state["routes"] = json!([]);
    state["staged"] = json!([{"id": "t2", "route": 5, "ctxs_in": [42], "ready": true}]);
    let state: ConductorState = serde_json::from_value(state).expect("still the right shape");
    let mut c = Conductor::restore(wf, state);
    let _ = c.next_tasks();
    let done = TaskEvent::Action {
        status: Status::Succeeded,
        result: Value::Null,
    };
    let _ = c.update_task("t1", 0, &done);
    let _ = c.update_task("t2", 5, &done);
    c.render_output();
}

#[test]
fn a_join_across_nested_fork_levels_is_reported() {
    // `s` is referenced twice (it opens a route per arrival); `c` is not under that fork.
    let text = "tasks:\n  a:\n    next:\n      - do: s\n  b:\n    next:\n      - do: s\n  c:\n    next:\n      - do: j\n  s:\n    next:\n      - do: j\n  j:\n    join: all\n";
    let err = compile(text).expect_err("ambiguous join");
    assert!(
        err.to_string()
            .contains("The join task \"j\" is unreachable"),
        "{err}"
    );
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].line, 14, "{err}");
}

#[test]
fn a_failed_workflow_reruns_from_its_failed_task() {
    let (_, mut c) = two_steps();
    let failed = TaskEvent::Action {
        status: Status::Failed,
        result: json!({"rc": 1}),
    };
    c.update_task("t1", 0, &failed).expect("failed");
    assert_eq!(c.status(), Some(Status::Failed));
    assert_eq!(c.state.errors.len(), 1);
    assert!(
        c.request_rerun(&[("t2".to_owned(), 0)], false).is_err(),
        "t2 never ran"
    );
    c.request_rerun(&[], false).expect("rerun accepted");
    assert_eq!(c.status(), Some(Status::Resuming));
    assert!(
        c.state.errors.is_empty(),
        "the failed task's errors are dropped"
    );
    let next = c.next_tasks();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, "t1");
    for (id, status) in [("t1", Status::Running), ("t1", Status::Succeeded)] {
        let e = TaskEvent::Action {
            status,
            result: Value::Null,
        };
        c.update_task(id, 0, &e).expect("event");
    }
    assert_eq!(c.next_tasks()[0].id, "t2");
    for status in [Status::Running, Status::Succeeded] {
        let e = TaskEvent::Action {
            status,
            result: Value::Null,
        };
        c.update_task("t2", 0, &e).expect("event");
    }
    assert_eq!(c.status(), Some(Status::Succeeded));
    assert!(
        c.request_rerun(&[], false).is_ok(),
        "a completed workflow may rerun"
    );
}

#[test]
fn pausing_a_with_items_task_waits_for_its_active_items() {
    let text = "tasks:\n  t1:\n    with:\n      items: <% [1, 2, 3] %>\n      concurrency: 2\n    action: core.noop\n";
    let wf = compile(text).expect("compiles");
    let mut c = Conductor::new(wf);
    c.start(&Map::new(), &Map::new());
    let next = c.next_tasks();
    assert_eq!(next[0].actions.len(), 2, "concurrency 2");
    for item_id in [0, 1] {
        let e = TaskEvent::Item {
            item_id,
            status: Status::Running,
            result: Value::Null,
            accumulated: Value::Null,
        };
        c.update_task("t1", 0, &e).expect("running");
    }
    c.request_status(Status::Paused).expect("pause accepted");
    assert_eq!(c.status(), Some(Status::Pausing));
    assert_eq!(c.state.sequence[0].status, Some(Status::Pausing));
    for item_id in [0, 1] {
        let e = TaskEvent::Item {
            item_id,
            status: Status::Succeeded,
            result: Value::Null,
            accumulated: json!([null, null, null]),
        };
        c.update_task("t1", 0, &e).expect("item done");
    }
    assert_eq!(c.state.sequence[0].status, Some(Status::Paused));
    assert_eq!(c.status(), Some(Status::Paused));
    assert!(c.next_tasks().is_empty(), "the third item waits for resume");
}

//! Every Orquesta workflow of the real packs in `shared/corpus/packs` (actions whose
//! `runner_type` is `orquesta`, their `entry_point` YAML) loads, passes inspection and
//! composes into a graph with at least one start task, except the packs' two workflows whose
//! spec is broken on purpose (`*fail-inspection.yaml`), which must be refused with line numbers.

use std::path::{Path, PathBuf};

use st2_core::yaml::{YamlLimits, parse_str};
use st2_workflow::conductor::Workflow;
use st2_workflow::expression::Evaluator;
use st2_workflow::spec::WorkflowSpec;

fn packs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/packs")
}

/// `(metadata file, workflow file)` for every Orquesta action of the corpus.
fn orquesta_actions() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let mut packs: Vec<PathBuf> = std::fs::read_dir(packs())
        .expect("corpus packs are readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    packs.sort();
    for pack in packs {
        let actions = pack.join("actions");
        let Ok(entries) = std::fs::read_dir(&actions) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for meta in files {
            let is_yaml = meta.extension().is_some_and(|x| x == "yaml" || x == "yml");
            if !is_yaml {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&meta) else {
                continue;
            };
            let Ok(doc) = parse_str(&text, &YamlLimits::default()) else {
                continue;
            };
            let json = doc.to_json();
            if json.get("runner_type").and_then(|v| v.as_str()) != Some("orquesta") {
                continue;
            }
            if let Some(entry) = json.get("entry_point").and_then(|v| v.as_str()) {
                out.push((meta.clone(), actions.join(entry)));
            }
        }
    }
    out
}

#[test]
fn every_corpus_workflow_loads_and_passes_inspection() {
    let actions = orquesta_actions();
    assert!(
        actions.len() >= 100,
        "expected the corpus to hold 100+ Orquesta actions, found {}",
        actions.len()
    );
    let mut problems = Vec::new();
    let mut refused = 0;
    for (meta, workflow) in &actions {
        let loaded = WorkflowSpec::from_file(workflow)
            .and_then(|spec| Workflow::compile(spec, Evaluator::new()));
        // The other `fail-inspection-*` workflows are broken at StackStorm's level (unknown
        // actions, wrong action parameters), which needs the action registry, not the
        // workflow language: they load here.
        let broken_on_purpose = workflow.to_string_lossy().ends_with("fail-inspection.yaml");
        if broken_on_purpose {
            match loaded {
                Err(e) => {
                    assert!(e.0.iter().all(|d| d.line > 0), "{e}");
                    refused += 1;
                }
                Ok(_) => problems.push(format!(
                    "{}: accepted, but it is broken",
                    workflow.display()
                )),
            }
            continue;
        }
        match loaded {
            Ok(wf) => {
                if wf.graph.roots.is_empty() {
                    problems.push(format!("{}: no start task", workflow.display()));
                }
            }
            Err(e) => problems.push(format!(
                "{} (from {}):\n{e}",
                workflow.display(),
                meta.display()
            )),
        }
    }
    println!(
        "{} corpus workflows checked, {refused} broken ones refused, {} with problems",
        actions.len(),
        problems.len()
    );
    assert_eq!(refused, 2, "the corpus has two workflows broken on purpose");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! How each kind of resource is listed and shown: paths, default columns (st2client's), the
//! property order of `get`, and the shared list/get/delete steps.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use crate::args::AttrArgs;
use crate::http::{Api, enc, query};
use crate::output::Out;

pub type Res = Result<ExitCode>;
pub const OK: Res = Ok(ExitCode::SUCCESS);

/// How one kind of resource is listed and shown.
#[derive(Debug)]
pub struct Resource {
    /// `Action`, for messages.
    pub display: &'static str,
    /// `/actions`.
    pub path: &'static str,
    /// Default list columns.
    pub list_attrs: &'static [&'static str],
    /// Property order of `get`.
    pub order: &'static [&'static str],
    /// List with `?include_attributes=` of the columns.
    pub include: bool,
    /// List path gets a trailing slash (the client's `query()` form).
    pub slash: bool,
}

pub const ACTION: Resource = Resource {
    display: "Action",
    path: "/actions",
    list_attrs: &["ref", "pack", "description"],
    order: &[
        "id",
        "uid",
        "ref",
        "pack",
        "name",
        "description",
        "enabled",
        "entry_point",
        "runner_type",
        "parameters",
    ],
    include: true,
    slash: false,
};
pub const RULE: Resource = Resource {
    display: "Rule",
    path: "/rules",
    list_attrs: &["ref", "pack", "description", "enabled"],
    order: &["id", "uid", "ref", "pack", "name", "description", "enabled"],
    include: true,
    slash: true,
};
pub const TRIGGER: Resource = Resource {
    display: "Trigger type",
    path: "/triggertypes",
    list_attrs: &["ref", "pack", "description"],
    order: &[
        "id",
        "ref",
        "pack",
        "name",
        "description",
        "parameters_schema",
        "payload_schema",
    ],
    include: true,
    slash: false,
};
pub const TRIGGER_INSTANCE: Resource = Resource {
    display: "Trigger instance",
    path: "/triggerinstances",
    list_attrs: &["id", "trigger", "occurrence_time", "status"],
    order: &["id", "trigger", "occurrence_time", "payload", "status"],
    include: true,
    slash: true,
};
pub const SENSOR: Resource = Resource {
    display: "Sensor",
    path: "/sensortypes",
    list_attrs: &["ref", "pack", "description", "enabled"],
    order: &[
        "id",
        "uid",
        "ref",
        "pack",
        "name",
        "enabled",
        "entry_point",
        "artifact_uri",
        "trigger_types",
    ],
    include: true,
    slash: false,
};
pub const RUNNER: Resource = Resource {
    display: "Runner type",
    path: "/runnertypes",
    list_attrs: &["name", "description"],
    order: &["id", "name", "description", "enabled", "runner_parameters"],
    include: true,
    slash: false,
};
pub const PACK: Resource = Resource {
    display: "Pack",
    path: "/packs",
    list_attrs: &["ref", "name", "description", "version", "author"],
    order: &[
        "name",
        "version",
        "author",
        "email",
        "keywords",
        "description",
    ],
    include: true,
    slash: false,
};
pub const POLICY: Resource = Resource {
    display: "Policy",
    path: "/policies",
    list_attrs: &["ref", "resource_ref", "policy_type", "enabled"],
    order: &[
        "id",
        "ref",
        "pack",
        "name",
        "description",
        "enabled",
        "resource_ref",
        "policy_type",
        "parameters",
    ],
    include: true,
    slash: true,
};
pub const INQUIRY: Resource = Resource {
    display: "Inquiry",
    path: "/inquiries",
    list_attrs: &["id", "roles", "users", "route", "ttl"],
    order: &["id", "roles", "users", "route", "ttl", "schema"],
    include: false,
    slash: true,
};
pub const APIKEY: Resource = Resource {
    display: "API key",
    path: "/apikeys",
    list_attrs: &["id", "user", "metadata"],
    order: &["id", "user", "metadata"],
    include: false,
    slash: false,
};
pub const POLICY_TYPE: Resource = Resource {
    display: "Policy type",
    path: "/policytypes",
    list_attrs: &["id", "resource_type", "name", "description"],
    order: &[
        "id",
        "ref",
        "resource_type",
        "name",
        "description",
        "enabled",
    ],
    include: false,
    slash: false,
};
pub const ACTION_ALIAS: Resource = Resource {
    display: "Action alias",
    path: "/actionalias",
    list_attrs: &["ref", "pack", "description", "enabled"],
    order: &[
        "id",
        "ref",
        "pack",
        "name",
        "description",
        "enabled",
        "action_ref",
        "formats",
    ],
    include: true,
    slash: false,
};
pub const TRACE: Resource = Resource {
    display: "Trace",
    path: "/traces",
    list_attrs: &["id", "uid", "trace_tag", "start_timestamp"],
    order: &[
        "id",
        "trace_tag",
        "action_executions",
        "rules",
        "trigger_instances",
        "start_timestamp",
    ],
    include: false,
    slash: true,
};
pub const TIMER: Resource = Resource {
    display: "Timer",
    path: "/timers",
    list_attrs: &["id", "uid", "type", "parameters"],
    order: &["id", "uid", "ref", "type", "parameters"],
    include: false,
    slash: false,
};
pub const RULE_ENFORCEMENT: Resource = Resource {
    display: "Rule enforcement",
    path: "/ruleenforcements",
    list_attrs: &[
        "id",
        "rule.ref",
        "trigger_instance_id",
        "execution_id",
        "enforced_at",
    ],
    order: &[
        "id",
        "rule.ref",
        "trigger_instance_id",
        "execution_id",
        "failure_reason",
        "enforced_at",
    ],
    include: false,
    slash: true,
};
pub const EXECUTION_LIST: &[&str] = &[
    "id",
    "action.ref",
    "context.user",
    "status",
    "start_timestamp",
    "end_timestamp",
];
pub const KEY_LIST: &[&str] = &[
    "name",
    "value",
    "secret",
    "encrypted",
    "scope",
    "user",
    "expire_timestamp",
];
pub const KEY_GET: &[&str] = &[
    "name",
    "value",
    "secret",
    "encrypted",
    "scope",
    "expire_timestamp",
];

pub fn strings(attrs: &[&str]) -> Vec<String> {
    attrs.iter().map(|s| (*s).to_owned()).collect()
}

/// The columns: `-a` or the defaults.
pub fn columns(attr: &AttrArgs, defaults: &[&str]) -> Vec<String> {
    if attr.attr.is_empty() {
        strings(defaults)
    } else {
        attr.attr.clone()
    }
}

/// `include_attributes` for these columns (none for `all`).
pub fn include_for(cols: &[String]) -> Option<String> {
    if cols.iter().any(|c| c == "all") {
        return None;
    }
    let mut firsts: Vec<&str> = Vec::new();
    for c in cols {
        let first = c.split('.').next().unwrap_or(c);
        if !firsts.contains(&first) {
            firsts.push(first);
        }
    }
    Some(firsts.join(","))
}

pub fn list_resource(
    api: &Api,
    out: &Out,
    r: &Resource,
    attr: &AttrArgs,
    mut filters: Vec<(&str, String)>,
) -> Res {
    let cols = columns(attr, r.list_attrs);
    let mut pairs = Vec::new();
    if r.include
        && let Some(inc) = include_for(&cols)
    {
        pairs.push(("include_attributes", inc));
    }
    pairs.append(&mut filters);
    let slash = if r.slash { "/" } else { "" };
    let (items, total) = api.list(&format!("{}{slash}{}", r.path, query(&pairs)))?;
    out.list(&items, &cols)?;
    note_more(out, items.len(), total);
    OK
}

pub fn note_more(out: &Out, shown: usize, total: Option<u64>) {
    if let Some(t) = total
        && out.is_table()
        && t > shown as u64
    {
        eprintln!("Note: only {shown} of {t} are shown. Use -n/--last for more.");
    }
}

/// `GET <path>/<id>`; 404 → `<Display> "<id>" is not found.`
pub fn fetch(api: &Api, r: &Resource, id: &str) -> Result<Value> {
    api.get_opt(&format!("{}/{}", r.path, enc(id)))?
        .ok_or_else(|| anyhow!("{} \"{id}\" is not found.", r.display))
}

pub fn get_resource(api: &Api, out: &Out, r: &Resource, id: &str, attr: &AttrArgs) -> Res {
    let item = fetch(api, r, id)?;
    out.object(&item, &attr.attr, r.order)?;
    OK
}

pub fn read_document(file: &std::path::Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(&text)
        .map_err(|e| anyhow!("{} is neither JSON nor YAML: {e}", file.display()))
}

pub fn deleted(out: &Out, what: &str, id: &str) -> Res {
    if out.is_table() {
        println!("Resource with id \"{id}\" has been successfully deleted.");
    } else {
        out.dump(&json!({"deleted": what, "id": id}))?;
    }
    OK
}

//! Policies: rules about how an action's executions are scheduled (concurrency limits) or
//! re-run (retries). A policy applies one policy type to one action.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues, Severity};
use crate::model::fields::{Fields, describe};
use crate::model::pack::PackIdentity;
use crate::model::{Origin, check_pack_field};
use crate::reference;
use crate::schema::{self, Schema};

/// A policy type: `action.concurrency`, `action.concurrency.attr`, `action.retry`.
#[derive(Debug, Clone)]
pub struct PolicyType {
    /// `<resource_type>.<name>`.
    pub reference: String,
    /// Name, e.g. `concurrency.attr`.
    pub name: String,
    /// The kind of resource it applies to (`action`).
    pub resource_type: String,
    /// What it does.
    pub description: String,
    /// Disabled policy types are not applied.
    pub enabled: bool,
    /// Parameters a policy of this type takes, in StackStorm's parameter dialect.
    pub parameters: Map<String, Value>,
    /// Validator for those parameters (unknown parameters rejected).
    pub schema: Arc<Schema>,
}

impl PolicyType {
    /// Read a policy type definition (built-in content).
    pub(crate) fn read(value: &Value, path: FieldPath, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, path, "a policy type", issues)?;
        let name = f.req_str("name", issues)?.to_owned();
        let resource_type = f.req_str("resource_type", issues)?.to_owned();
        if resource_type != "action" {
            issues.error(
                &f.child("resource_type"),
                "policy types apply to `action` only",
            );
        }
        let description = f.str("description", issues).unwrap_or_default().to_owned();
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let parameters = f.object("parameters", issues).cloned().unwrap_or_default();
        schema::check_parameters(&parameters, &f.child("parameters"), issues);
        f.accept(&["module", "id", "uid", "ref"]);
        let params_path = f.child("parameters");
        f.finish("a policy type", Severity::Error, issues);
        let schema = Schema::for_parameters(parameters.clone(), false);
        if let Err(e) = schema.check() {
            issues.error(&params_path, e.to_string());
            return None;
        }
        Some(PolicyType {
            reference: reference::join(&resource_type, &name),
            name,
            resource_type,
            description,
            enabled,
            parameters,
            schema: Arc::new(schema),
        })
    }
}

/// A policy as written.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Name, unique in the pack.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Disabled policies are not applied.
    pub enabled: bool,
    /// The action it applies to.
    pub resource_ref: String,
    /// The policy type ref.
    pub policy_type: String,
    /// Parameters for the policy type.
    pub parameters: Map<String, Value>,
}

/// A registered policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// `<pack>.<name>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Name within the pack.
    pub name: String,
    /// Where it was defined.
    #[serde(flatten)]
    pub origin: Origin,
    /// What it does.
    pub description: Option<String>,
    /// Disabled policies are not applied.
    pub enabled: bool,
    /// The action it applies to.
    pub resource_ref: String,
    /// The policy type ref.
    pub policy_type: String,
    /// Parameters with the policy type's defaults filled in.
    pub parameters: Map<String, Value>,
}

impl Policy {
    /// The pack it belongs to.
    pub fn pack(&self) -> &str {
        &self.origin.pack
    }
}

/// Compile a policy given as a JSON object (the body of the API's `POST /policies` or `PUT
/// /policies/<id>`) against the policy types `catalog` holds, with the checks a policy file
/// gets: the parameters are validated against the policy type's parameters schema and its
/// defaults filled in. `pack` defaults to `default`; `id`, `ref`, `uid` and `metadata_file`
/// are accepted and ignored.
///
/// # Errors
/// Every error found, as `<field>: <message>` lines.
pub fn policy_from_json(
    value: &Value,
    catalog: &crate::catalog::Catalog,
) -> Result<Policy, Vec<String>> {
    let (spec, origin, mut issues) =
        crate::model::read_api_body(value, "the policy must be a JSON object", PolicySpec::read)?;
    let policy_type = catalog.policy_type(&spec.policy_type).cloned();
    let policy = spec.compile(origin, policy_type.as_deref(), &mut issues);
    crate::model::compiled(policy, issues)
}

impl PolicySpec {
    /// Read a policy file (unknown fields are rejected, as by StackStorm's policy schema).
    pub(crate) fn read(value: &Value, pack: &PackIdentity, issues: &mut Issues) -> Option<Self> {
        let mut f = Fields::of(value, FieldPath::root(), "a policy", issues)?;
        check_pack_field(&mut f, pack, issues);
        let name = f.req_str("name", issues);
        let description = f.str("description", issues).map(str::to_owned);
        let enabled = f.bool("enabled", issues).unwrap_or(true);
        let resource_ref = f.req_str("resource_ref", issues);
        let policy_type = f.req_str("policy_type", issues);
        let parameters = f.object("parameters", issues).cloned().unwrap_or_default();
        let params_path = f.child("parameters");
        for (k, v) in &parameters {
            if v.is_null() {
                issues.error(
                    &params_path.key(k),
                    format!(
                        "policy parameter `{k}` must have a value, not {}",
                        describe(v)
                    ),
                );
            }
        }
        f.accept(&["metadata_file", "id", "ref", "uid"]);
        f.finish("a policy", Severity::Error, issues);
        Some(PolicySpec {
            name: name?.to_owned(),
            description,
            enabled,
            resource_ref: resource_ref?.to_owned(),
            policy_type: policy_type?.to_owned(),
            parameters,
        })
    }

    /// Check the parameters against the policy type.
    pub(crate) fn compile(
        self,
        origin: Origin,
        policy_type: Option<&PolicyType>,
        issues: &mut Issues,
    ) -> Option<Policy> {
        let Some(policy_type) = policy_type else {
            issues.error(
                &FieldPath::root().key("policy_type"),
                format!("policy type `{}` does not exist", self.policy_type),
            );
            return None;
        };
        let params_path = FieldPath::root().key("parameters");
        let parameters = match policy_type
            .schema
            .validate(&Value::Object(self.parameters.clone()))
        {
            Ok(Value::Object(cleaned)) => cleaned,
            Ok(_) => self.parameters.clone(),
            Err(violations) => {
                for v in violations {
                    let path = if self.parameters.contains_key(&v.parameter) {
                        params_path.key(&v.parameter)
                    } else {
                        params_path.clone()
                    };
                    issues.error(
                        &path,
                        format!(
                            "invalid parameters for policy type `{}`: {}",
                            policy_type.reference, v.message
                        ),
                    );
                }
                return None;
            }
        };
        Some(Policy {
            reference: reference::join(&origin.pack, &self.name),
            name: self.name,
            origin,
            description: self.description,
            enabled: self.enabled,
            resource_ref: self.resource_ref,
            policy_type: self.policy_type,
            parameters,
        })
    }
}

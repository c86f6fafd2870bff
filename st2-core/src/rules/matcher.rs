//! Matching trigger instances to rules.
//!
//! Rules are compiled once and indexed by the trigger they listen to: the trigger type plus
//! its parameters (a webhook's `url`, a timer's interval), as StackStorm binds each rule to one
//! concrete trigger. An instance only meets the rules of its own trigger. Rules are added,
//! replaced, enabled, disabled and removed while matching goes on: readers take a snapshot of
//! the index (an `Arc` clone) and never wait for a writer.
//!
//! As in StackStorm (`st2reactor/rules/matcher.py`), standard rules are matched first, each on
//! its own; backstop rules are matched only when no standard rule matched.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::criteria::{Criteria, Environment, Failure, Outcome, Problem, Unrecoverable};
use crate::expr::jsonpath::Step;
use crate::expr::rhai::Rhai;
use crate::model::rule::{Rule, RuleKind};

/// The trigger an instance came from: its type and the parameters identifying it.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRef {
    /// The trigger type ref (`core.st2.webhook`).
    pub trigger_type: String,
    /// The trigger's parameters (`{"url": "deploy"}`); empty for parameter-less types.
    pub parameters: Map<String, Value>,
}

impl TriggerRef {
    /// A parameter-less trigger of `trigger_type`.
    pub fn of_type(trigger_type: impl Into<String>) -> Self {
        TriggerRef {
            trigger_type: trigger_type.into(),
            parameters: Map::new(),
        }
    }

    /// The parameters as index text: empty for none, else canonical JSON (keys sorted).
    fn parameters_key(&self) -> String {
        if self.parameters.is_empty() {
            String::new()
        } else {
            canonical(&Value::Object(self.parameters.clone()))
        }
    }
}

/// One occurrence of a trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerInstance {
    /// Its id (StackStorm prints it in enforcement failure reasons).
    pub id: String,
    /// What fired.
    pub trigger: TriggerRef,
    /// The payload criteria and parameters read as `trigger`.
    pub payload: Value,
    /// When it happened.
    pub occurrence_time: DateTime<Utc>,
}

fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// A rule ready to be matched.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// The rule.
    pub rule: Arc<Rule>,
    /// Its criteria, compiled.
    pub criteria: Criteria,
}

impl CompiledRule {
    /// Compile `rule`.
    ///
    /// # Errors
    /// The problems that make its criteria fail for every payload (see
    /// [`Criteria::problems`]); such a rule is not accepted.
    pub fn new(rule: Rule, rhai: &Rhai) -> Result<CompiledRule, Vec<Problem>> {
        let criteria = Criteria::compile(&rule.criteria, rhai);
        let problems = criteria.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(CompiledRule {
            rule: Arc::new(rule),
            criteria,
        })
    }

    /// Evaluate the criteria against an instance's payload (a disabled rule never matches).
    ///
    /// # Errors
    /// As [`Criteria::evaluate`].
    pub fn evaluate(
        &self,
        payload: &Value,
        env: &Environment<'_>,
    ) -> Result<Outcome, Unrecoverable> {
        if !self.rule.enabled {
            return Ok(Outcome::default());
        }
        self.criteria.evaluate(payload, env)
    }
}

/// What matching one trigger instance found.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    /// The rules to enforce, in the order they were added.
    pub matched: Vec<Arc<CompiledRule>>,
    /// Rules whose criteria raised: each failure becomes a failed rule enforcement (a rule may
    /// appear here and in `matched`, when a `search` item raised but another item matched).
    pub failed: Vec<(Arc<CompiledRule>, Vec<Failure>)>,
}

/// Python equality of a scalar pattern, as a hash key: `True`, `1` and `1.0` are one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum EqKey {
    Str(String),
    Int(i64),
    Float(u64),
}

fn eq_key(v: &Value) -> Option<EqKey> {
    match v {
        Value::String(s) => Some(EqKey::Str(s.clone())),
        Value::Bool(b) => Some(EqKey::Int(i64::from(*b))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(EqKey::Int(i));
            }
            if n.as_u64().is_some() {
                return None; // beyond i64: not indexed
            }
            let f = n.as_f64()?;
            if !f.is_finite() {
                None
            } else if f.fract() == 0.0 && f.abs() < 9.0e18 {
                #[allow(clippy::cast_possible_truncation)]
                Some(EqKey::Int(f as i64))
            } else {
                Some(EqKey::Float(f.to_bits()))
            }
        }
        _ => None,
    }
}

/// A rule in the index, with its place in insertion order.
#[derive(Debug, Clone)]
struct Slot {
    seq: u64,
    rule: Arc<CompiledRule>,
}

/// Rules whose first criterion is `equals` on the same payload path, by pattern.
#[derive(Debug, Clone, Default)]
struct EqIndex {
    steps: Vec<Step>,
    by_value: HashMap<EqKey, Vec<Slot>>,
}

/// The rules of one trigger (type + parameters).
#[derive(Debug, Clone, Default)]
struct Bucket {
    parameters: String,
    /// Rules every instance must meet.
    scan: Vec<Slot>,
    /// Rules only instances with the right value meet.
    indexed: Vec<EqIndex>,
}

impl Bucket {
    fn add(&mut self, slot: Slot) {
        let leading = slot
            .rule
            .criteria
            .leading_equality()
            .and_then(|(steps, pattern)| Some((steps.to_vec(), eq_key(pattern)?)));
        match leading {
            Some((steps, key)) => {
                let pos = match self.indexed.iter().position(|i| i.steps == steps) {
                    Some(p) => p,
                    None => {
                        self.indexed.push(EqIndex {
                            steps,
                            by_value: HashMap::new(),
                        });
                        self.indexed.len() - 1
                    }
                };
                let list = self.indexed[pos].by_value.entry(key).or_default();
                list.push(slot);
                list.sort_by_key(|s| s.seq);
            }
            None => {
                self.scan.push(slot);
                self.scan.sort_by_key(|s| s.seq);
            }
        }
    }

    fn remove(&mut self, reference: &str) -> Option<Slot> {
        if let Some(pos) = self
            .scan
            .iter()
            .position(|s| s.rule.rule.reference == reference)
        {
            return Some(self.scan.remove(pos));
        }
        for index in &mut self.indexed {
            for list in index.by_value.values_mut() {
                if let Some(pos) = list.iter().position(|s| s.rule.rule.reference == reference) {
                    return Some(list.remove(pos));
                }
            }
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.scan.is_empty()
            && self
                .indexed
                .iter()
                .all(|i| i.by_value.values().all(Vec::is_empty))
    }

    fn all(&self) -> Vec<&Slot> {
        let mut out: Vec<&Slot> = self.scan.iter().collect();
        for index in &self.indexed {
            out.extend(index.by_value.values().flatten());
        }
        out.sort_by_key(|s| s.seq);
        out
    }

    /// The rules an instance with this payload can match, in insertion order.
    fn candidates(&self, payload: &Value) -> Vec<&Slot> {
        let mut out: Vec<&Slot> = self.scan.iter().collect();
        let mut extra = false;
        for index in &self.indexed {
            let mut v = payload;
            let mut found = true;
            for step in &index.steps {
                match step.apply(v) {
                    Some(next) => v = next,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if !found {
                continue;
            }
            if let Some(list) = eq_key(v).and_then(|k| index.by_value.get(&k)) {
                out.extend(list);
                extra = true;
            }
        }
        if extra {
            out.sort_by_key(|s| s.seq);
        }
        out
    }
}

#[derive(Debug, Default, Clone)]
struct Index {
    by_type: HashMap<String, Vec<Bucket>>,
    /// Rule ref → (trigger type, parameters key).
    by_ref: HashMap<String, (String, String)>,
    next_seq: u64,
}

impl Index {
    fn bucket(&self, trigger_type: &str, parameters: &str) -> Option<&Bucket> {
        self.by_type
            .get(trigger_type)?
            .iter()
            .find(|b| b.parameters == parameters)
    }
}

/// The live set of rules. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct Matcher {
    index: RwLock<Arc<Index>>,
}

impl Matcher {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Arc<Index> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let mut guard = self.index.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = (**guard).clone();
        let out = f(&mut next);
        *guard = Arc::new(next);
        out
    }

    /// Add a compiled rule, replacing the rule with the same ref (which may listen to another
    /// trigger; a replaced rule keeps its place in the matching order). Returns the rule it
    /// replaced.
    pub fn insert(&self, rule: CompiledRule) -> Option<Arc<CompiledRule>> {
        let rule = Arc::new(rule);
        let trigger = TriggerRef {
            trigger_type: rule.rule.trigger.trigger_type.clone(),
            parameters: rule.rule.trigger.parameters.clone(),
        };
        let parameters = trigger.parameters_key();
        self.update(|index| {
            let old = remove_from(index, &rule.rule.reference);
            let seq = match &old {
                Some(slot) => slot.seq,
                None => {
                    index.next_seq += 1;
                    index.next_seq
                }
            };
            index.by_ref.insert(
                rule.rule.reference.clone(),
                (trigger.trigger_type.clone(), parameters.clone()),
            );
            let buckets = index.by_type.entry(trigger.trigger_type).or_default();
            let pos = match buckets.iter().position(|b| b.parameters == parameters) {
                Some(p) => p,
                None => {
                    buckets.push(Bucket {
                        parameters,
                        ..Bucket::default()
                    });
                    buckets.len() - 1
                }
            };
            buckets[pos].add(Slot { seq, rule });
            old.map(|s| s.rule)
        })
    }

    /// Remove a rule by ref. Returns it, if it was there.
    pub fn remove(&self, reference: &str) -> Option<Arc<CompiledRule>> {
        self.update(|index| remove_from(index, reference).map(|s| s.rule))
    }

    /// Enable or disable a rule by ref. Returns false when there is no such rule.
    pub fn set_enabled(&self, reference: &str, enabled: bool) -> bool {
        let Some(current) = self.get(reference) else {
            return false;
        };
        let mut rule = (*current.rule).clone();
        rule.enabled = enabled;
        self.insert(CompiledRule {
            rule: Arc::new(rule),
            criteria: current.criteria.clone(),
        });
        true
    }

    /// The rule with this ref.
    pub fn get(&self, reference: &str) -> Option<Arc<CompiledRule>> {
        let index = self.snapshot();
        let (trigger_type, parameters) = index.by_ref.get(reference)?;
        index
            .bucket(trigger_type, parameters)?
            .all()
            .into_iter()
            .find(|s| s.rule.rule.reference == reference)
            .map(|s| s.rule.clone())
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.snapshot().by_ref.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rules listening to `trigger`, enabled or not, in the order they were added.
    pub fn rules_for(&self, trigger: &TriggerRef) -> Vec<Arc<CompiledRule>> {
        let index = self.snapshot();
        index
            .bucket(&trigger.trigger_type, &trigger.parameters_key())
            .map(|b| b.all().into_iter().map(|s| s.rule.clone()).collect())
            .unwrap_or_default()
    }

    /// Match one trigger instance: standard rules first, backstop rules only if no standard
    /// rule matched. Rules whose first criterion is an `equals` the payload cannot satisfy are
    /// skipped through an index without being evaluated (they would stop there, false, without
    /// raising).
    ///
    /// # Errors
    /// [`Unrecoverable`] when a rule's criteria raise what StackStorm does not catch; the
    /// instance then fails as a whole and no rule is enforced.
    pub fn match_instance(
        &self,
        instance: &TriggerInstance,
        env: &Environment<'_>,
    ) -> Result<Matches, Unrecoverable> {
        let index = self.snapshot();
        let mut out = Matches::default();
        let parameters = instance.trigger.parameters_key();
        let Some(bucket) = index.bucket(&instance.trigger.trigger_type, &parameters) else {
            return Ok(out);
        };
        let candidates = bucket.candidates(&instance.payload);
        for pass in [RuleKind::Standard, RuleKind::Backstop] {
            if pass == RuleKind::Backstop && !out.matched.is_empty() {
                break;
            }
            for slot in candidates
                .iter()
                .filter(|s| s.rule.rule.kind == pass && s.rule.rule.enabled)
            {
                let rule = &slot.rule;
                let outcome = rule.criteria.evaluate(&instance.payload, env)?;
                if !outcome.failures.is_empty() {
                    out.failed.push((rule.clone(), outcome.failures));
                }
                if outcome.matched {
                    out.matched.push(rule.clone());
                }
            }
        }
        Ok(out)
    }
}

/// Take a rule out of the index.
fn remove_from(index: &mut Index, reference: &str) -> Option<Slot> {
    let (trigger_type, parameters) = index.by_ref.remove(reference)?;
    let buckets = index.by_type.get_mut(&trigger_type)?;
    let pos = buckets.iter().position(|b| b.parameters == parameters)?;
    let slot = buckets[pos].remove(reference);
    if buckets[pos].is_empty() {
        buckets.remove(pos);
    }
    if buckets.is_empty() {
        index.by_type.remove(&trigger_type);
    }
    slot
}

//! The catalog: everything loaded from packs (and built in), looked up by ref.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{
    Action, ActionAlias, ConfigSchema, Pack, PackConfig, Policy, PolicyType, Rule, RunnerType,
    Sensor, TriggerType,
};

/// All content known to an engine, keyed by ref. Iteration is in ref order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packs: BTreeMap<String, Arc<Pack>>,
    runner_types: BTreeMap<String, Arc<RunnerType>>,
    policy_types: BTreeMap<String, Arc<PolicyType>>,
    trigger_types: BTreeMap<String, Arc<TriggerType>>,
    actions: BTreeMap<String, Arc<Action>>,
    rules: BTreeMap<String, Arc<Rule>>,
    sensors: BTreeMap<String, Arc<Sensor>>,
    policies: BTreeMap<String, Arc<Policy>>,
    aliases: BTreeMap<String, Arc<ActionAlias>>,
    config_schemas: BTreeMap<String, Arc<ConfigSchema>>,
    configs: BTreeMap<String, Arc<PackConfig>>,
}

/// The refs of what one pack holds (the shape `st2d pack validate --json` prints).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackContents {
    /// Action refs.
    pub actions: Vec<String>,
    /// Rule refs.
    pub rules: Vec<String>,
    /// Sensor refs.
    pub sensors: Vec<String>,
    /// Trigger type refs.
    pub trigger_types: Vec<String>,
    /// Policy refs.
    pub policies: Vec<String>,
    /// Action alias refs.
    pub aliases: Vec<String>,
}

macro_rules! accessors {
    ($field:ident, $ty:ty, $get:ident, $iter:ident, $insert:ident, $remove:ident, $key:ident) => {
        /// Look one up by ref (or name, for runner types).
        pub fn $get(&self, key: &str) -> Option<&Arc<$ty>> {
            self.$field.get(key)
        }

        /// All of them, in ref order.
        pub fn $iter(&self) -> impl Iterator<Item = &Arc<$ty>> {
            self.$field.values()
        }

        /// Add or replace one; returns the one it replaced.
        pub fn $insert(&mut self, item: $ty) -> Option<Arc<$ty>> {
            let key = item.$key.clone();
            self.$field.insert(key, Arc::new(item))
        }

        /// Remove one by ref.
        pub fn $remove(&mut self, key: &str) -> Option<Arc<$ty>> {
            self.$field.remove(key)
        }
    };
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Catalog::insert_action`] of an action already shared.
    pub fn insert_shared_action(&mut self, action: Arc<Action>) -> Option<Arc<Action>> {
        self.actions.insert(action.reference.clone(), action)
    }

    accessors!(
        runner_types,
        RunnerType,
        runner_type,
        runner_types,
        insert_runner_type,
        remove_runner_type,
        name
    );
    accessors!(
        policy_types,
        PolicyType,
        policy_type,
        policy_types,
        insert_policy_type,
        remove_policy_type,
        reference
    );
    accessors!(
        trigger_types,
        TriggerType,
        trigger_type,
        trigger_types,
        insert_trigger_type,
        remove_trigger_type,
        reference
    );
    accessors!(
        actions,
        Action,
        action,
        actions,
        insert_action,
        remove_action,
        reference
    );
    accessors!(
        rules,
        Rule,
        rule,
        rules,
        insert_rule,
        remove_rule,
        reference
    );
    accessors!(
        sensors,
        Sensor,
        sensor,
        sensors,
        insert_sensor,
        remove_sensor,
        reference
    );
    accessors!(
        policies,
        Policy,
        policy,
        policies,
        insert_policy,
        remove_policy,
        reference
    );
    accessors!(
        aliases,
        ActionAlias,
        alias,
        aliases,
        insert_alias,
        remove_alias,
        reference
    );
    accessors!(
        configs,
        PackConfig,
        config,
        configs,
        insert_config,
        remove_config,
        pack
    );

    /// Look a pack up by ref.
    pub fn pack(&self, reference: &str) -> Option<&Arc<Pack>> {
        self.packs.get(reference)
    }

    /// All packs, in ref order.
    pub fn packs(&self) -> impl Iterator<Item = &Arc<Pack>> {
        self.packs.values()
    }

    /// Add or replace a pack.
    pub fn insert_pack(&mut self, pack: Pack) -> Option<Arc<Pack>> {
        self.packs
            .insert(pack.meta.reference.clone(), Arc::new(pack))
    }

    /// A pack's config schema.
    pub fn config_schema(&self, pack: &str) -> Option<&Arc<ConfigSchema>> {
        self.config_schemas.get(pack)
    }

    /// A pack's config as actions and sensors see it: its values (empty without a config
    /// file) with the config schema's defaults filled in. Templates in values are not rendered.
    pub fn resolved_config(&self, pack: &str) -> serde_json::Map<String, serde_json::Value> {
        let values = self
            .config(pack)
            .map(|c| c.values.clone())
            .unwrap_or_default();
        match self.config_schema(pack) {
            Some(schema) => schema.with_defaults(&values),
            None => values,
        }
    }

    /// Set a pack's config schema.
    pub fn insert_config_schema(&mut self, pack: &str, schema: ConfigSchema) {
        self.config_schemas
            .insert(pack.to_owned(), Arc::new(schema));
    }

    /// Remove a pack and everything it holds (content, config, config schema); returns the
    /// refs of the content removed.
    pub fn remove_pack(&mut self, pack: &str) -> PackContents {
        let contents = self.contents_of(pack);
        for r in &contents.actions {
            self.actions.remove(r);
        }
        for r in &contents.rules {
            self.rules.remove(r);
        }
        for r in &contents.sensors {
            self.sensors.remove(r);
        }
        for r in &contents.trigger_types {
            self.trigger_types.remove(r);
        }
        for r in &contents.policies {
            self.policies.remove(r);
        }
        for r in &contents.aliases {
            self.aliases.remove(r);
        }
        self.configs.remove(pack);
        self.config_schemas.remove(pack);
        self.packs.remove(pack);
        contents
    }

    /// The refs of everything in one pack.
    pub fn contents_of(&self, pack: &str) -> PackContents {
        fn refs<T>(
            map: &BTreeMap<String, Arc<T>>,
            pack: &str,
            owner: impl Fn(&T) -> &str,
        ) -> Vec<String> {
            map.iter()
                .filter(|(_, v)| owner(v) == pack)
                .map(|(k, _)| k.clone())
                .collect()
        }
        PackContents {
            actions: refs(&self.actions, pack, Action::pack),
            rules: refs(&self.rules, pack, Rule::pack),
            sensors: refs(&self.sensors, pack, Sensor::pack),
            trigger_types: refs(&self.trigger_types, pack, TriggerType::pack),
            policies: refs(&self.policies, pack, Policy::pack),
            aliases: refs(&self.aliases, pack, ActionAlias::pack),
        }
    }
}

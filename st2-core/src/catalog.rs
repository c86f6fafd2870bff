//! The catalog: everything loaded from packs (and built in), looked up by ref.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::model::pack::PackIdentity;
use crate::model::{
    Action, ActionAlias, ActionSpec, ConfigSchema, Origin, Pack, PackConfig, Policy, PolicyType,
    Rule, RunnerType, Sensor, TriggerType,
};

/// All content known to an engine, keyed by ref. Iteration is in ref order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packs: BTreeMap<String, Arc<Pack>>,
    runner_types: BTreeMap<String, Arc<RunnerType>>,
    policy_types: BTreeMap<String, Arc<PolicyType>>,
    trigger_types: BTreeMap<String, Arc<TriggerType>>,
    actions: BTreeMap<String, ActionSlot>,
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

    /// Look an action up by ref. An action loaded from a pack is compiled from its packed
    /// metadata on first use (and kept from then on).
    pub fn action(&self, key: &str) -> Option<&Arc<Action>> {
        let slot = self.actions.get(key)?;
        if let Some(action) = slot.live.get() {
            return Some(action);
        }
        let (packed, index) = slot.packed.as_ref()?;
        let action = packed.compile(&packed.inflate(), *index, self)?;
        Some(slot.live.get_or_init(|| Arc::new(action)))
    }

    /// Whether an action `key` is loaded (without compiling a packed one).
    pub fn has_action(&self, key: &str) -> bool {
        self.actions.contains_key(key)
    }

    /// Every action's ref, in order.
    pub fn action_refs(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }

    /// Every action, in ref order. Packed actions not used yet are compiled for the caller
    /// and not kept: listing thousands of actions leaves the catalog as small as it was.
    pub fn actions(&self) -> impl Iterator<Item = Arc<Action>> + '_ {
        self.compile_each(self.actions.values())
    }

    /// The actions `refs` names, in that order (refs not loaded are skipped), compiled for the
    /// caller like [`Catalog::actions`]: one page of a listing.
    pub fn actions_named<'a>(
        &'a self,
        refs: impl IntoIterator<Item = &'a str> + 'a,
    ) -> impl Iterator<Item = Arc<Action>> + 'a {
        self.compile_each(refs.into_iter().filter_map(|r| self.actions.get(r)))
    }

    fn compile_each<'a>(
        &'a self,
        slots: impl Iterator<Item = &'a ActionSlot> + 'a,
    ) -> impl Iterator<Item = Arc<Action>> + 'a {
        let mut inflated: Option<(Arc<PackedActions>, String)> = None;
        slots.filter_map(move |slot| {
            if let Some(action) = slot.live.get() {
                return Some(action.clone());
            }
            let (packed, index) = slot.packed.as_ref()?;
            // Actions of one pack sort together, so one chunk serves a run of them.
            let text = match &inflated {
                Some((p, text)) if Arc::ptr_eq(p, packed) => text,
                _ => &inflated.insert((packed.clone(), packed.inflate())).1,
            };
            packed.compile(text, *index, self).map(Arc::new)
        })
    }

    /// Add or replace an action; returns the one it replaced.
    pub fn insert_action(&mut self, action: Action) -> Option<Arc<Action>> {
        self.insert_shared_action(Arc::new(action))
    }

    /// [`Catalog::insert_action`] of an action already shared.
    pub fn insert_shared_action(&mut self, action: Arc<Action>) -> Option<Arc<Action>> {
        let key = action.reference.clone();
        let old = self.actions.insert(key, ActionSlot::live(action))?;
        self.compiled(old)
    }

    /// Add or replace an action kept packed, the `index`th of `packed`; returns the one it
    /// replaced.
    pub(crate) fn insert_packed_action(
        &mut self,
        reference: String,
        packed: Arc<PackedActions>,
        index: usize,
    ) -> Option<Arc<Action>> {
        let slot = ActionSlot {
            packed: Some((packed, index)),
            live: OnceLock::new(),
        };
        let old = self.actions.insert(reference, slot)?;
        self.compiled(old)
    }

    /// Remove an action by ref.
    pub fn remove_action(&mut self, key: &str) -> Option<Arc<Action>> {
        let old = self.actions.remove(key)?;
        self.compiled(old)
    }

    /// The action a slot taken out of the catalog held.
    fn compiled(&self, slot: ActionSlot) -> Option<Arc<Action>> {
        if let Some(action) = slot.live.into_inner() {
            return Some(action);
        }
        let (packed, index) = slot.packed?;
        packed.compile(&packed.inflate(), index, self).map(Arc::new)
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
        let actions = self
            .actions
            .iter()
            .filter(|(_, slot)| slot.pack() == pack)
            .map(|(k, _)| k.clone())
            .collect();
        PackContents {
            actions,
            rules: refs(&self.rules, pack, Rule::pack),
            sensors: refs(&self.sensors, pack, Sensor::pack),
            trigger_types: refs(&self.trigger_types, pack, TriggerType::pack),
            policies: refs(&self.policies, pack, Policy::pack),
            aliases: refs(&self.aliases, pack, ActionAlias::pack),
        }
    }
}

/// One action of the catalog: compiled, or packed until first used.
#[derive(Debug, Clone)]
struct ActionSlot {
    /// Where its metadata is kept, for an action loaded from a pack.
    packed: Option<(Arc<PackedActions>, usize)>,
    /// The compiled action (set at once for an action added in code).
    live: OnceLock<Arc<Action>>,
}

impl ActionSlot {
    fn live(action: Arc<Action>) -> Self {
        ActionSlot {
            packed: None,
            live: OnceLock::from(action),
        }
    }

    /// The owning pack's ref.
    fn pack(&self) -> &str {
        match (self.live.get(), &self.packed) {
            (Some(action), _) => action.pack(),
            (None, Some((packed, _))) => &packed.pack.reference,
            (None, None) => "",
        }
    }
}

/// Actions of one pack as the loader read them, their metadata (as compact JSON) deflated
/// together, so that the catalog holds a few hundred bytes per action until one is used.
///
/// A daemon loads every action of its packs (the AWS pack alone has over 3,000) and runs a
/// handful: compiled, each would hold its strings, parameter handles and schema for nothing.
/// Actions are compiled again from this text on first use, by the same code that checked them
/// when they were loaded.
pub(crate) struct PackedActions {
    pack: PackIdentity,
    /// Per action, `metadata_file`, a NUL and the metadata JSON, concatenated and deflated
    /// (kept as it is in the unexpected case that deflating fails).
    text: Box<[u8]>,
    deflated: bool,
    /// End of each action's text in the inflated buffer.
    ends: Box<[usize]>,
}

impl std::fmt::Debug for PackedActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedActions")
            .field("pack", &self.pack.reference)
            .field("actions", &self.ends.len())
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl PackedActions {
    /// Pack `actions`, each its `metadata_file` and its metadata as JSON.
    pub(crate) fn new(pack: PackIdentity, actions: &[(String, String)]) -> Self {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(actions.len());
        for (metadata_file, json) in actions {
            text.push_str(metadata_file);
            text.push('\0');
            text.push_str(json);
            ends.push(text.len());
        }
        let (text, deflated) = match deflate(text.as_bytes()) {
            Some(packed) => (packed, true),
            None => (text.into_bytes(), false),
        };
        PackedActions {
            pack,
            text: text.into_boxed_slice(),
            deflated,
            ends: ends.into_boxed_slice(),
        }
    }

    /// The concatenated text.
    fn inflate(&self) -> String {
        if self.deflated {
            inflate(&self.text)
        } else {
            String::from_utf8_lossy(&self.text).into_owned()
        }
    }

    /// Compile the `index`th action of `text` (what [`PackedActions::inflate`] returned),
    /// against the runner types of `catalog`.
    fn compile(&self, text: &str, index: usize, catalog: &Catalog) -> Option<Action> {
        let start = match index {
            0 => 0,
            i => *self.ends.get(i - 1)?,
        };
        let end = *self.ends.get(index)?;
        let (metadata_file, json) = text.get(start..end)?.split_once('\0')?;
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        // The action passed these checks when it was loaded; they find the same now.
        let spec = ActionSpec::reread(&value, &self.pack)?;
        let runner = catalog.runner_type(&spec.runner_type).map(|r| &**r);
        let origin = Origin {
            pack: self.pack.reference.clone(),
            metadata_file: metadata_file.to_owned(),
        };
        spec.recompile(origin, runner)
    }
}

/// `bytes` deflated at the fastest level (a start packs every action of every pack).
fn deflate(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// What [`deflate`] packed; empty if it cannot be read back (it always can: we wrote it).
fn inflate(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::with_capacity(bytes.len() * 4);
    match flate2::read::DeflateDecoder::new(bytes).read_to_string(&mut text) {
        Ok(_) => text,
        Err(_) => String::new(),
    }
}

//! The command-line arguments of every command (clap), with st2client's names and flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The password.
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    pub username: String,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Token lifetime in seconds.
    #[arg(short = 'l', long)]
    pub ttl: Option<u64>,
    /// Also write the password (plain text) into the config file.
    #[arg(short = 'w', long = "write-password")]
    pub write_password: bool,
}

#[derive(Debug, Args)]
pub struct AuthArgs {
    pub username: String,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Token lifetime in seconds.
    #[arg(short = 'l', long)]
    pub ttl: Option<u64>,
    /// Print only the token.
    #[arg(short = 't', long = "only-token")]
    pub only_token: bool,
}

/// `-a/--attr`: attributes to show (space or comma separated; `all` for every one).
#[derive(Debug, Args, Clone, Default)]
pub struct AttrArgs {
    #[arg(short = 'a', long = "attr", num_args = 1.., value_delimiter = ',', value_name = "ATTR")]
    pub attr: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Action reference (pack.name).
    pub action: String,
    /// Parameters as key=value (cast by the action's schema; `key=@file` reads a file).
    #[arg(value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// Do not wait: print the execution id.
    #[arg(short = 'a', long = "async")]
    pub asynchronous: bool,
    /// Attributes of the result to show.
    #[arg(long = "attr", num_args = 1.., value_delimiter = ',')]
    pub attr: Vec<String>,
    /// Print only this key of the result (dotted path).
    #[arg(short = 'k', long = "key")]
    pub key: Option<String>,
    /// Run as this user (admins only).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Trace tag.
    #[arg(long)]
    pub trace_tag: Option<String>,
    /// Existing trace id.
    #[arg(long, conflicts_with = "trace_tag")]
    pub trace_id: Option<String>,
    /// Delay in milliseconds before the execution is scheduled.
    #[arg(long)]
    pub delay: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// List actions.
    List {
        /// Only this pack's actions.
        #[arg(short = 'p', long)]
        pack: Option<String>,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one action.
    Get {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Create an action from a JSON or YAML file.
    Create { file: PathBuf },
    /// Delete an action.
    Delete {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
    /// Run an action (same as `st2 run`).
    Execute(RunArgs),
    /// Enable an action.
    Enable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
    /// Disable an action.
    Disable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ActionAliasCommand {
    /// List action aliases.
    List {
        #[arg(short = 'p', long)]
        pack: Option<String>,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one action alias.
    Get {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Which alias matches a command text.
    Match { command: String },
    /// Run the action of the alias matching a command text.
    Execute {
        command: String,
        /// The user the alias runs for.
        #[arg(short = 'u', long, default_value = "")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// The most recent executions.
    List {
        /// How many.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only executions of this action.
        #[arg(long)]
        action: Option<String>,
        /// Only executions with this status.
        #[arg(long)]
        status: Option<String>,
        /// Only executions by this user.
        #[arg(long)]
        user: Option<String>,
        /// Include the children of workflows.
        #[arg(short = 'l', long)]
        showall: bool,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one execution.
    Get {
        id: String,
        #[command(flatten)]
        attr: AttrArgs,
        /// Print only this key of the result (dotted path).
        #[arg(short = 'k', long = "key")]
        key: Option<String>,
    },
    /// Follow an execution's output (and its children's) until it completes.
    Tail {
        /// Execution id, or `last`.
        id: String,
        /// Only this output type (stdout, stderr).
        #[arg(long = "type")]
        output_type: Option<String>,
        /// Prefix each chunk with its time and type.
        #[arg(long)]
        include_metadata: bool,
    },
    /// Run an execution's action again.
    #[command(name = "re-run")]
    ReRun {
        id: String,
        /// Parameters to change, key=value.
        #[arg(value_name = "KEY=VALUE")]
        parameters: Vec<String>,
        /// Workflow tasks to re-run.
        #[arg(long, num_args = 1..)]
        tasks: Vec<String>,
        /// Tasks not to reset.
        #[arg(long, num_args = 1..)]
        no_reset: Vec<String>,
        /// Delay in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay: u64,
        /// Do not wait.
        #[arg(short = 'a', long = "async")]
        asynchronous: bool,
    },
    /// Cancel executions.
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Pause a workflow execution.
    Pause { id: String },
    /// Resume a paused workflow execution.
    Resume { id: String },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// List rules.
    List {
        #[arg(short = 'p', long)]
        pack: Option<String>,
        /// Only rules running this action.
        #[arg(short = 'c', long)]
        action: Option<String>,
        /// Only rules on this trigger.
        #[arg(short = 'g', long)]
        trigger: Option<String>,
        #[arg(long, conflicts_with = "disabled")]
        enabled: bool,
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one rule.
    Get {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Create a rule from a YAML or JSON file.
    Create { file: PathBuf },
    /// Delete a rule.
    Delete {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
    /// Enable a rule.
    Enable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
    /// Disable a rule.
    Disable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
}

/// `list` and `get` (trigger, sensor, webhook, runner).
#[derive(Debug, Subcommand)]
pub enum GetListCommand {
    /// List them.
    List {
        #[arg(short = 'p', long)]
        pack: Option<String>,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one.
    Get {
        #[arg(value_name = "REF_OR_NAME")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SensorCommand {
    #[command(flatten)]
    Read(GetListCommand),
    /// Enable a sensor (it starts at once).
    Enable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
    /// Disable a sensor (it stops at once).
    Disable {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerInstanceCommand {
    /// The most recent trigger instances.
    List {
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only instances of this trigger.
        #[arg(long)]
        trigger: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one.
    Get {
        id: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Emit a trigger instance again.
    #[command(name = "re-emit")]
    ReEmit { id: String },
}

#[derive(Debug, Args, Clone)]
pub struct ScopeArgs {
    /// Scope: system, user (or all for list).
    #[arg(short = 's', long)]
    pub scope: Option<String>,
    /// The user whose user-scoped keys to use (admins only).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List keys.
    List {
        #[arg(long)]
        prefix: Option<String>,
        /// Show secret values in clear.
        #[arg(short = 'd', long)]
        decrypt: bool,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one key.
    Get {
        name: String,
        #[arg(short = 'd', long)]
        decrypt: bool,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Set a key.
    Set {
        name: String,
        value: String,
        /// Store the value encrypted (a secret).
        #[arg(short = 'e', long)]
        encrypt: bool,
        /// Seconds until the key expires.
        #[arg(short = 'l', long)]
        ttl: Option<u64>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a key.
    Delete {
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete every key whose name starts with a prefix.
    #[command(name = "delete_by_prefix")]
    DeleteByPrefix {
        #[arg(short = 'p', long, required = true)]
        prefix: String,
    },
    /// Load keys from a JSON or YAML file (a list of {name, value, scope?, user?, secret?, ttl?}
    /// or a {name: value} object).
    Load {
        file: PathBuf,
        /// Store non-string values as their JSON text.
        #[arg(short = 'c', long)]
        convert: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Installed packs.
    List {
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// One installed pack.
    Get {
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Install packs (from the exchange, a git URL or a path).
    Install {
        #[arg(required = true)]
        packs: Vec<String>,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        skip_dependencies: bool,
    },
    /// Remove packs.
    Remove {
        #[arg(required = true)]
        packs: Vec<String>,
    },
    /// Search the pack index.
    Search { query: String },
    /// Show a pack of the index.
    Show { pack: String },
    /// Register packs' content (all packs when none is named).
    Register {
        packs: Vec<String>,
        /// Only these content types (actions, rules, sensors, …).
        #[arg(long, num_args = 1..)]
        types: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List policies.
    List {
        #[arg(short = 'p', long)]
        pack: Option<String>,
        /// Only policies on this action.
        #[arg(short = 'r', long)]
        resource_ref: Option<String>,
        /// Only policies of this type.
        #[arg(long)]
        policy_type: Option<String>,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one policy.
    Get {
        #[arg(value_name = "REF_OR_ID")]
        reference: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum InquiryCommand {
    /// Inquiries waiting for a response.
    List {
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one inquiry.
    Get {
        id: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Respond to an inquiry.
    Respond {
        id: String,
        /// The response as JSON.
        #[arg(short = 'r', long, required = true)]
        response: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key (its key is shown only now).
    Create {
        /// Print only the key.
        #[arg(short = 'k', long = "only-key")]
        only_key: bool,
        /// Metadata as JSON.
        #[arg(short = 'm', long)]
        metadata: Option<String>,
        /// Owner (admins only).
        #[arg(short = 'u', long)]
        user: Option<String>,
    },
    /// List API keys.
    List {
        /// Show the key hashes.
        #[arg(long)]
        show_secrets: bool,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Show one API key.
    Get {
        #[arg(value_name = "ID_OR_KEY")]
        id: String,
        #[command(flatten)]
        attr: AttrArgs,
    },
    /// Delete an API key.
    Delete {
        #[arg(value_name = "ID_OR_KEY")]
        id: String,
    },
}

//! `st2`: the StackStorm command-line client for `st2d serve` (or StackStorm itself), with
//! st2client's commands, configuration (`~/.st2/config`, `ST2_*`) and token cache.
//! It only speaks HTTP; none of the engine or server code runs here.

mod args;
mod cmds;
mod config;
mod http;
mod output;
mod resources;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// StackStorm command-line client.
#[derive(Debug, Parser)]
#[command(name = "st2", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (default ~/.st2/config; env ST2_CONFIG_FILE).
    #[arg(long, global = true, value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Ignore the config file.
    #[arg(long, global = true)]
    pub skip_config: bool,
    /// Base URL: the api, auth and stream URLs are <base>:9101/v1, :9100, :9102/v1
    /// (env ST2_BASE_URL).
    #[arg(long = "url", global = true, value_name = "URL")]
    pub base_url: Option<String>,
    /// API URL (env ST2_API_URL; default <base>:9101/v1).
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Auth URL (env ST2_AUTH_URL; default <base>:9100).
    #[arg(long, global = true, value_name = "URL")]
    pub auth_url: Option<String>,
    /// Stream URL (env ST2_STREAM_URL; default <base>:9102/v1).
    #[arg(long, global = true, value_name = "URL")]
    pub stream_url: Option<String>,
    /// API version (env ST2_API_VERSION; default v1).
    #[arg(long, global = true, value_name = "VERSION")]
    pub api_version: Option<String>,
    /// CA bundle to verify https servers with (env ST2_CACERT; without it https
    /// certificates are not verified, as with st2client).
    #[arg(long, global = true, value_name = "PATH")]
    pub cacert: Option<PathBuf>,
    /// Auth token (env ST2_AUTH_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// API key (env ST2_API_KEY).
    #[arg(long, global = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Print each request (as curl) and response on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print JSON.
    #[arg(short = 'j', long, global = true, conflicts_with = "yaml")]
    pub json: bool,
    /// Print YAML.
    #[arg(short = 'y', long, global = true)]
    pub yaml: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in: get a token, cache it in ~/.st2/token-USER and put the user in the config.
    Login(args::LoginArgs),
    /// Show who the client is authenticated as.
    Whoami,
    /// Get an auth token (printed, not stored).
    Auth(args::AuthArgs),
    /// Run an action: `st2 run core.local cmd=date`.
    Run(args::RunArgs),
    /// Actions.
    Action {
        #[command(subcommand)]
        command: args::ActionCommand,
    },
    /// Executions of actions.
    Execution {
        #[command(subcommand)]
        command: args::ExecutionCommand,
    },
    /// Rules.
    Rule {
        #[command(subcommand)]
        command: args::RuleCommand,
    },
    /// Trigger types.
    Trigger {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Trigger instances.
    #[command(name = "trigger-instance")]
    TriggerInstance {
        #[command(subcommand)]
        command: args::TriggerInstanceCommand,
    },
    /// The key-value datastore.
    Key {
        #[command(subcommand)]
        command: args::KeyCommand,
    },
    /// Packs.
    Pack {
        #[command(subcommand)]
        command: args::PackCommand,
    },
    /// Policies.
    Policy {
        #[command(subcommand)]
        command: args::PolicyCommand,
    },
    /// Inquiries (workflows waiting for a response).
    Inquiry {
        #[command(subcommand)]
        command: args::InquiryCommand,
    },
    /// Sensors.
    Sensor {
        #[command(subcommand)]
        command: args::SensorCommand,
    },
    /// API keys.
    Apikey {
        #[command(subcommand)]
        command: args::ApiKeyCommand,
    },
    /// Webhooks.
    Webhook {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Runner types.
    Runner {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Policy types.
    #[command(name = "policy-type")]
    PolicyType {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Action aliases (ChatOps).
    #[command(name = "action-alias")]
    ActionAlias {
        #[command(subcommand)]
        command: args::ActionAliasCommand,
    },
    /// Traces.
    Trace {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Timers.
    Timer {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Rule enforcements.
    #[command(name = "rule-enforcement")]
    RuleEnforcement {
        #[command(subcommand)]
        command: args::GetListCommand,
    },
    /// Print the resolved configuration (URLs, credentials source).
    #[command(name = "print-config")]
    PrintConfig,
}

fn main() -> ExitCode {
    // `st2 … | head`: a closed stdout ends the program quietly, as a shell tool should.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    match cmds::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut message = format!("{e}");
            for cause in e.chain().skip(1) {
                message.push_str(&format!(": {cause}"));
            }
            eprintln!("ERROR: {message}");
            ExitCode::FAILURE
        }
    }
}

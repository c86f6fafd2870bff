//! The commands: what each sends and prints.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::args::*;
use crate::resources::*;

use crate::config::{self, Ini, Overrides, Settings};
use crate::http::{Api, enc, is_status, query};
use crate::output::{Format, Out, lookup};
use crate::run::{self, RunOptions};
use crate::{Cli, Command};

// ---------------------------------------------------------------------------------------
// Dispatch

pub fn dispatch(cli: Cli) -> Res {
    let g = cli.global;
    let overrides = Overrides {
        config_file: g.config_file,
        skip_config: g.skip_config,
        base_url: g.base_url,
        api_url: g.api_url,
        auth_url: g.auth_url,
        stream_url: g.stream_url,
        api_version: g.api_version,
        cacert: g.cacert,
        token: g.token,
        api_key: g.api_key,
        debug: g.debug,
    };
    let settings = Settings::resolve(&overrides)?;
    let format = if g.json {
        Format::Json
    } else if g.yaml {
        Format::Yaml
    } else {
        Format::Table
    };
    let out = Out::new(format, &settings.timezone);
    if let Command::PrintConfig = cli.command {
        out.object(&settings.describe(), &[], &[])?;
        return OK;
    }
    let api = Api::new(settings)?;
    let api = &api;
    let out = &out;
    match cli.command {
        Command::PrintConfig => OK,
        Command::Login(a) => login(api, out, a),
        Command::Whoami => whoami(api, out),
        Command::Auth(a) => auth(api, out, a),
        Command::Run(a) => run_action(api, out, a),
        Command::Action { command } => action(api, out, command),
        Command::Execution { command } => execution(api, out, command),
        Command::Rule { command } => rule(api, out, command),
        Command::Trigger { command } => get_list(api, out, &TRIGGER, command),
        Command::Sensor { command } => sensor(api, out, command),
        Command::Runner { command } => get_list(api, out, &RUNNER, command),
        Command::Webhook { command } => webhook(api, out, command),
        Command::PolicyType { command } => get_list(api, out, &POLICY_TYPE, command),
        Command::ActionAlias { command } => action_alias(api, out, command),
        Command::Trace { command } => get_list(api, out, &TRACE, command),
        Command::Timer { command } => get_list(api, out, &TIMER, command),
        Command::RuleEnforcement { command } => get_list(api, out, &RULE_ENFORCEMENT, command),
        Command::TriggerInstance { command } => trigger_instance(api, out, command),
        Command::Key { command } => key(api, out, command),
        Command::Pack { command } => pack(api, out, command),
        Command::Policy { command } => policy(api, out, command),
        Command::Inquiry { command } => inquiry(api, out, command),
        Command::Apikey { command } => apikey(api, out, command),
    }
}

// ---------------------------------------------------------------------------------------
// Authentication

fn password(args: &PasswordArgs, user: &str) -> Result<String> {
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    let stdin = std::io::stdin();
    if !args.password_stdin && stdin.is_terminal() {
        return prompt_password(user);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line)
}

/// `Password: ` on the terminal, typed without echo (as st2client's getpass).
#[cfg(unix)]
fn prompt_password(user: &str) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("Password for {user}: ");
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off the terminal echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("reading the password")?;
    restored.context("restoring the terminal echo")?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        bail!("no password given");
    }
    Ok(line)
}

#[cfg(not(unix))]
fn prompt_password(user: &str) -> Result<String> {
    bail!("give the password of {user} with -p PASSWORD or --password-stdin")
}

fn login(api: &Api, out: &Out, a: LoginArgs) -> Res {
    let pw = password(&a.password, &a.username)?;
    let token = api
        .create_token(&a.username, &pw, a.ttl)
        .with_context(|| format!("Failed to log in as {}", a.username))?;
    api.cache_token(&token);
    let path = api.settings.config_path.clone();
    let mut ini = match std::fs::read_to_string(&path) {
        Ok(text) => Ini::parse(&text, &path)?,
        Err(_) => Ini::default(),
    };
    ini.set("credentials", "username", &a.username);
    if a.write_password {
        ini.set("credentials", "password", &pw);
    } else {
        ini.remove("credentials", "password");
    }
    if let Some(parent) = path.parent() {
        config::create_private_dir(parent)?;
    }
    config::write_private(&path, &ini.render())?;
    if out.is_table() {
        println!("Logged in as {}", a.username);
        if !a.write_password {
            println!(
                "\nNote: the password was not written to {} (use -w for that); log in again \
                 when the token expires ({}).",
                path.display(),
                token["expiry"].as_str().unwrap_or("")
            );
        }
    } else {
        out.dump(&json!({"user": token["user"], "expiry": token["expiry"]}))?;
    }
    OK
}

fn whoami(api: &Api, out: &Out) -> Res {
    let info = match api.get("/user") {
        Ok(v) => v,
        Err(e) if is_status(&e, 401) => {
            eprintln!(
                "Not authenticated. Log in with `st2 login <user>` or set ST2_AUTH_TOKEN / ST2_API_KEY."
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e),
    };
    if !out.is_table() {
        out.dump(&info)?;
        return OK;
    }
    println!(
        "Currently logged in as \"{}\".\n",
        info["username"].as_str().unwrap_or("")
    );
    let method = lookup(&info, "authentication.method")
        .as_str()
        .unwrap_or("");
    println!("Authentication method: {method}");
    if method == "authentication token" {
        println!(
            "Authentication token expire time: {}",
            lookup(&info, "authentication.token_expire")
                .as_str()
                .unwrap_or("")
        );
    }
    let roles: Vec<&str> = lookup(&info, "rbac.roles")
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let enabled = lookup(&info, "rbac.enabled").as_bool().unwrap_or(false);
    println!(
        "\nRBAC:\n - Enabled: {}\n - Roles: {}",
        if enabled { "True" } else { "False" },
        roles.join(", ")
    );
    OK
}

fn auth(api: &Api, out: &Out, a: AuthArgs) -> Res {
    let pw = password(&a.password, &a.username)?;
    let token = api.create_token(&a.username, &pw, a.ttl)?;
    if a.only_token {
        println!("{}", token["token"].as_str().unwrap_or(""));
        return OK;
    }
    let shown = json!({"user": token["user"], "token": token["token"], "expiry": token["expiry"]});
    if out.is_table() {
        out.list(&[shown], &strings(&["user", "token", "expiry"]))?;
    } else {
        out.dump(&shown)?;
    }
    OK
}

// ---------------------------------------------------------------------------------------
// Actions and executions

fn run_action(api: &Api, out: &Out, a: RunArgs) -> Res {
    let opts = RunOptions {
        asynchronous: a.asynchronous,
        attrs: a.attr,
        result_key: a.key,
    };
    let request = run::RunRequest {
        action_ref: a.action,
        params: a.parameters,
        user: a.user,
        trace_tag: a.trace_tag,
        trace_id: a.trace_id,
        delay: a.delay,
    };
    run::run(api, out, &request, &opts)
}

fn action(api: &Api, out: &Out, command: ActionCommand) -> Res {
    match command {
        ActionCommand::List { pack, attr } => {
            let filters = pack.map(|p| vec![("pack", p)]).unwrap_or_default();
            list_resource(api, out, &ACTION, &attr, filters)
        }
        ActionCommand::Get { reference, attr } => {
            let item = run::get_action(api, &reference)?;
            out.object(&item, &attr.attr, ACTION.order)?;
            OK
        }
        ActionCommand::Create { file } => {
            let body = read_document(&file)?;
            let created = api.post("/actions", &body)?;
            out.object(&created, &[], ACTION.order)?;
            OK
        }
        ActionCommand::Delete { reference } => {
            let item = run::get_action(api, &reference)?;
            let id = item["id"].as_str().unwrap_or(&reference).to_owned();
            api.call(
                reqwest::Method::DELETE,
                &format!("/actions/{}", enc(&id)),
                Some(&json!({"remove_files": false})),
            )?;
            deleted(out, "action", &reference)
        }
        ActionCommand::Execute(a) => run_action(api, out, a),
        ActionCommand::Enable { reference } => set_action_enabled(api, out, &reference, true),
        ActionCommand::Disable { reference } => set_action_enabled(api, out, &reference, false),
    }
}

fn set_action_enabled(api: &Api, out: &Out, reference: &str, enabled: bool) -> Res {
    let mut item = run::get_action(api, reference)?;
    let id = item["id"]
        .as_str()
        .ok_or_else(|| anyhow!("action {reference} has no id"))?
        .to_owned();
    if let Some(m) = item.as_object_mut() {
        m.insert("enabled".into(), Value::Bool(enabled));
    }
    let updated = api.put(&format!("/actions/{}", enc(&id)), &item)?;
    out.object(&updated, &[], ACTION.order)?;
    OK
}

fn action_alias(api: &Api, out: &Out, command: ActionAliasCommand) -> Res {
    match command {
        ActionAliasCommand::List { pack, attr } => {
            get_list(api, out, &ACTION_ALIAS, GetListCommand::List { pack, attr })
        }
        ActionAliasCommand::Get { reference, attr } => get_list(
            api,
            out,
            &ACTION_ALIAS,
            GetListCommand::Get { reference, attr },
        ),
        ActionAliasCommand::Match { command } => {
            let reply = api.post("/actionalias/match", &json!({"command": command}))?;
            if out.is_table() {
                let alias = &reply["actionalias"];
                out.list(
                    &[json!({
                        "name": alias["name"],
                        "description": alias["description"],
                        "representation": reply["representation"],
                    })],
                    &strings(&["name", "description", "representation"]),
                )?;
            } else {
                out.dump(&reply)?;
            }
            OK
        }
        ActionAliasCommand::Execute { command, user } => {
            let reply = api.post(
                "/aliasexecution/match_and_execute",
                &json!({"command": command, "user": user, "source_channel": "cli"}),
            )?;
            if !out.is_table() {
                out.dump(&reply)?;
                return OK;
            }
            let first = &reply["results"][0];
            println!(
                "Matching Action-alias: '{}'",
                lookup(first, "actionalias.ref").as_str().unwrap_or("")
            );
            let id = lookup(first, "execution.id").as_str().unwrap_or("");
            println!("To get the results, execute:\n st2 execution get {id}");
            OK
        }
    }
}

fn execution(api: &Api, out: &Out, command: ExecutionCommand) -> Res {
    match command {
        ExecutionCommand::List {
            last,
            action,
            status,
            user,
            showall,
            attr,
        } => {
            let cols = columns(&attr, EXECUTION_LIST);
            let mut pairs = vec![("limit", last.to_string())];
            if let Some(a) = action {
                pairs.push(("action", a));
            }
            if let Some(s) = status {
                pairs.push(("status", s));
            }
            if let Some(u) = user {
                pairs.push(("user", u));
            }
            if !showall {
                pairs.push(("parent", "null".into()));
            }
            pairs.push(("sort_desc", "True".into()));
            if let Some(inc) = include_for(&cols) {
                pairs.push(("include_attributes", inc));
            }
            let (mut items, total) = api.list(&format!("/executions/{}", query(&pairs)))?;
            if !out.is_table() {
                // As st2client: oldest first in JSON/YAML.
                items.reverse();
            }
            out.list(&items, &cols)?;
            note_more(out, items.len(), total);
            OK
        }
        ExecutionCommand::Get { id, attr, key } => {
            let Some(item) = api.get_opt(&format!("/executions/{}", enc(&id)))? else {
                bail!("Execution \"{id}\" is not found.");
            };
            let opts = RunOptions {
                asynchronous: false,
                attrs: attr.attr,
                result_key: key,
            };
            run::show_execution(api, out, &item, &opts)?;
            OK
        }
        ExecutionCommand::Tail {
            id,
            output_type,
            include_metadata,
        } => run::tail(api, out, &id, output_type, include_metadata),
        ExecutionCommand::ReRun {
            id,
            parameters,
            tasks,
            no_reset,
            delay,
            asynchronous,
        } => {
            let opts = RunOptions {
                asynchronous,
                ..RunOptions::default()
            };
            let request = run::ReRunRequest {
                id,
                params: parameters,
                tasks,
                no_reset,
                delay,
            };
            run::rerun(api, out, &request, &opts)
        }
        ExecutionCommand::Cancel { ids } => {
            let mut code = ExitCode::SUCCESS;
            for id in ids {
                let reply = match api.delete(&format!("/executions/{}", enc(&id))) {
                    Ok(v) => v,
                    Err(e) if is_status(&e, 404) => {
                        eprintln!("ERROR: Execution \"{id}\" is not found.");
                        code = ExitCode::FAILURE;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if !out.is_table() {
                    out.dump(&reply)?;
                } else if let Some(f) = reply["faultstring"].as_str() {
                    println!("{f}");
                } else {
                    let status = reply["status"].as_str().unwrap_or("canceling");
                    if status == "canceled" {
                        println!("Action execution with id {id} canceled.");
                    } else {
                        println!(
                            "Action execution with id {id} is being canceled (status={status})."
                        );
                    }
                }
            }
            Ok(code)
        }
        ExecutionCommand::Pause { id } => change_status(api, out, &id, "pausing"),
        ExecutionCommand::Resume { id } => change_status(api, out, &id, "resuming"),
    }
}

fn change_status(api: &Api, out: &Out, id: &str, status: &str) -> Res {
    let reply = api.put(
        &format!("/executions/{}", enc(id)),
        &json!({"status": status}),
    )?;
    out.execution(&reply, &strings(&run::DETAIL_ATTRS))?;
    OK
}

// ---------------------------------------------------------------------------------------
// Rules, triggers, sensors, runners, webhooks

fn rule(api: &Api, out: &Out, command: RuleCommand) -> Res {
    match command {
        RuleCommand::List {
            pack,
            action,
            trigger,
            enabled,
            disabled,
            attr,
        } => {
            let mut filters = vec![("limit", "50".to_owned())];
            if let Some(p) = pack {
                filters.push(("pack", p));
            }
            if let Some(a) = action {
                filters.push(("action", a));
            }
            if let Some(t) = trigger {
                filters.push(("trigger", t));
            }
            if enabled {
                filters.push(("enabled", "True".into()));
            }
            if disabled {
                filters.push(("enabled", "False".into()));
            }
            list_resource(api, out, &RULE, &attr, filters)
        }
        RuleCommand::Get { reference, attr } => get_resource(api, out, &RULE, &reference, &attr),
        RuleCommand::Create { file } => {
            let body = read_document(&file)?;
            let created = api.post("/rules", &body)?;
            out.object(&created, &[], RULE.order)?;
            OK
        }
        RuleCommand::Delete { reference } => {
            let item = fetch(api, &RULE, &reference)?;
            let id = item["id"].as_str().unwrap_or(&reference).to_owned();
            api.delete(&format!("/rules/{}", enc(&id)))?;
            deleted(out, "rule", &reference)
        }
        RuleCommand::Enable { reference } => set_enabled(api, out, &reference, true),
        RuleCommand::Disable { reference } => set_enabled(api, out, &reference, false),
    }
}

fn set_enabled(api: &Api, out: &Out, reference: &str, enabled: bool) -> Res {
    let mut item = fetch(api, &RULE, reference)?;
    let id = item["id"]
        .as_str()
        .ok_or_else(|| anyhow!("rule {reference} has no id"))?
        .to_owned();
    if let Some(m) = item.as_object_mut() {
        m.remove("ref");
        m.insert("enabled".into(), Value::Bool(enabled));
    }
    let updated = api.put(&format!("/rules/{}", enc(&id)), &item)?;
    out.object(
        &updated,
        &[],
        &["id", "ref", "pack", "name", "enabled", "description"],
    )?;
    OK
}

fn sensor(api: &Api, out: &Out, command: SensorCommand) -> Res {
    let (reference, enabled) = match command {
        SensorCommand::Read(command) => return get_list(api, out, &SENSOR, command),
        SensorCommand::Enable { reference } => (reference, true),
        SensorCommand::Disable { reference } => (reference, false),
    };
    // As st2client: read the sensor type, send it back with `enabled` set.
    let mut item = fetch(api, &SENSOR, &reference)?;
    let id = item["id"]
        .as_str()
        .ok_or_else(|| anyhow!("sensor {reference} has no id"))?
        .to_owned();
    if let Some(m) = item.as_object_mut() {
        m.insert("enabled".into(), Value::Bool(enabled));
    }
    let updated = api.put(&format!("/sensortypes/{}", enc(&id)), &item)?;
    out.object(&updated, &[], SENSOR.order)?;
    OK
}

fn get_list(api: &Api, out: &Out, r: &Resource, command: GetListCommand) -> Res {
    match command {
        GetListCommand::List { pack, attr } => {
            let filters = pack.map(|p| vec![("pack", p)]).unwrap_or_default();
            list_resource(api, out, r, &attr, filters)
        }
        GetListCommand::Get { reference, attr } => get_resource(api, out, r, &reference, &attr),
    }
}

fn webhook(api: &Api, out: &Out, command: GetListCommand) -> Res {
    match command {
        GetListCommand::List { attr, .. } => {
            let cols = columns(&attr, &["url", "type", "description"]);
            let (items, _) = api.list("/webhooks?include_attributes=url%2Ctype%2Cdescription")?;
            let items: Vec<Value> = items
                .into_iter()
                .map(|mut w| {
                    let url = lookup(&w, "parameters.url").clone();
                    if let Some(m) = w.as_object_mut()
                        && !url.is_null()
                    {
                        m.insert("url".into(), url);
                    }
                    w
                })
                .collect();
            out.list(&items, &cols)?;
            OK
        }
        GetListCommand::Get { reference, attr } => {
            let item = api
                .get_opt(&format!(
                    "/webhooks/{}",
                    reference.split('/').map(enc).collect::<Vec<_>>().join("/")
                ))?
                .ok_or_else(|| anyhow!("Webhook \"{reference}\" is not found."))?;
            out.object(&item, &attr.attr, &["id", "ref", "type", "parameters"])?;
            OK
        }
    }
}

fn trigger_instance(api: &Api, out: &Out, command: TriggerInstanceCommand) -> Res {
    match command {
        TriggerInstanceCommand::List {
            last,
            trigger,
            status,
            attr,
        } => {
            let mut filters = vec![("limit", last.to_string())];
            if let Some(t) = trigger {
                filters.push(("trigger", t));
            }
            if let Some(s) = status {
                filters.push(("status", s));
            }
            list_resource(api, out, &TRIGGER_INSTANCE, &attr, filters)
        }
        TriggerInstanceCommand::Get { id, attr } => {
            get_resource(api, out, &TRIGGER_INSTANCE, &id, &attr)
        }
        TriggerInstanceCommand::ReEmit { id } => {
            let reply = api.call(
                reqwest::Method::POST,
                &format!("/triggerinstances/{}/re_emit", enc(&id)),
                Some(&Value::Null),
            )?;
            match reply["message"].as_str() {
                Some(m) if out.is_table() => println!("{m}"),
                _ => out.dump(&reply)?,
            }
            OK
        }
    }
}

// ---------------------------------------------------------------------------------------
// Keys

fn scope_pairs(scope: &ScopeArgs, default: &str) -> Vec<(&'static str, String)> {
    let mut pairs = vec![(
        "scope",
        scope.scope.clone().unwrap_or_else(|| default.to_owned()),
    )];
    if let Some(u) = &scope.user {
        pairs.push(("user", u.clone()));
    }
    pairs
}

fn key(api: &Api, out: &Out, command: KeyCommand) -> Res {
    match command {
        KeyCommand::List {
            prefix,
            decrypt,
            scope,
            limit,
            attr,
        } => {
            let cols = columns(&attr, KEY_LIST);
            let mut pairs = vec![("decrypt", decrypt.to_string())];
            pairs.extend(scope_pairs(&scope, "all"));
            pairs.push(("limit", limit.to_string()));
            if let Some(p) = prefix {
                pairs.push(("prefix", p));
            }
            let (items, _) = api.list(&format!("/keys/{}", query(&pairs)))?;
            out.list(&items, &cols)?;
            OK
        }
        KeyCommand::Get {
            name,
            decrypt,
            scope,
            attr,
        } => {
            let mut pairs = vec![("decrypt", decrypt.to_string())];
            pairs.extend(scope_pairs(&scope, "system"));
            let item = api
                .get_opt(&format!("/keys/{}{}", enc(&name), query(&pairs)))?
                .ok_or_else(|| anyhow!("Key Value Pair \"{name}\" is not found."))?;
            let cols = columns(&attr, KEY_GET);
            if out.is_table() {
                out.list(&[item], &cols)?;
            } else {
                out.object(&item, &attr.attr, KEY_GET)?;
            }
            OK
        }
        KeyCommand::Set {
            name,
            value,
            encrypt,
            ttl,
            scope,
        } => {
            let mut body = json!({
                "name": name,
                "scope": scope.scope.clone().unwrap_or_else(|| "system".into()),
                "user": scope.user,
                "value": value,
            });
            if encrypt {
                body["secret"] = json!(true);
            }
            if let Some(t) = ttl {
                body["ttl"] = json!(t);
            }
            let item = api.put(&format!("/keys/{}", enc(&name)), &body)?;
            if out.is_table() {
                out.list(&[item], &strings(KEY_GET))?;
            } else {
                out.dump(&item)?;
            }
            OK
        }
        KeyCommand::Delete { name, scope } => {
            let q = query(&scope_pairs(&scope, "system"));
            let path = format!("/keys/{}{q}", enc(&name));
            if api.get_opt(&path)?.is_none() {
                bail!("Key Value Pair \"{name}\" is not found.");
            }
            api.delete(&path)?;
            deleted(out, "key", &name)
        }
        KeyCommand::DeleteByPrefix { prefix } => {
            let (items, _) = api.list(&format!("/keys{}", query(&[("prefix", prefix)])))?;
            let mut names = Vec::new();
            for item in &items {
                let Some(name) = item["name"].as_str() else {
                    continue;
                };
                let mut pairs = Vec::new();
                if let Some(scope) = item["scope"].as_str() {
                    pairs.push(("scope", scope.to_owned()));
                }
                if let Some(user) = item["user"].as_str() {
                    pairs.push(("user", user.to_owned()));
                }
                api.delete(&format!("/keys/{}{}", enc(name), query(&pairs)))?;
                names.push(name.to_owned());
            }
            if out.is_table() {
                println!("Deleted {} keys", names.len());
                if !names.is_empty() {
                    println!("Deleted keys: {}", names.join(", "));
                }
            } else {
                out.dump(&json!({"deleted": names}))?;
            }
            OK
        }
        KeyCommand::Load { file, convert } => {
            let doc = read_document(&file)?;
            let entries: Vec<Value> = match doc {
                Value::Array(a) => a,
                Value::Object(m) if m.contains_key("name") && m.contains_key("value") => {
                    vec![Value::Object(m)]
                }
                Value::Object(m) => m
                    .into_iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect(),
                _ => bail!("{}: expected a list of keys or an object", file.display()),
            };
            let mut loaded = Vec::new();
            for (i, mut e) in entries.into_iter().enumerate() {
                let name = e["name"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{}: item {i} has no \"name\"", file.display()))?
                    .to_owned();
                let value = e.get("value").cloned().unwrap_or(Value::Null);
                let value = match value {
                    Value::String(s) => Value::String(s),
                    Value::Null => bail!("{}: key {name} has no \"value\"", file.display()),
                    other if convert => Value::String(other.to_string()),
                    other => bail!(
                        "{}: the value of key {name} is {other}, not a string (use -c/--convert)",
                        file.display()
                    ),
                };
                e["value"] = value;
                if e.get("scope").is_none() {
                    e["scope"] = json!("system");
                }
                let item = api.put(&format!("/keys/{}", enc(&name)), &e)?;
                loaded.push(item);
            }
            out.list(&loaded, &strings(&["name", "value", "scope", "user"]))?;
            OK
        }
    }
}

// ---------------------------------------------------------------------------------------
// Packs, policies, inquiries, API keys

fn pack(api: &Api, out: &Out, command: PackCommand) -> Res {
    match command {
        PackCommand::List { attr } => list_resource(api, out, &PACK, &attr, Vec::new()),
        PackCommand::Get { reference, attr } => get_resource(api, out, &PACK, &reference, &attr),
        PackCommand::Install {
            packs,
            force,
            skip_dependencies,
        } => {
            let body =
                json!({"packs": packs, "force": force, "skip_dependencies": skip_dependencies});
            pack_operation(api, out, "/packs/install", &body, &packs)
        }
        PackCommand::Remove { packs } => pack_operation(
            api,
            out,
            "/packs/uninstall",
            &json!({"packs": packs}),
            &packs,
        ),
        PackCommand::Search { query } => {
            let reply = api.post("/packs/index/search", &json!({"query": query}))?;
            let items = reply.as_array().cloned().unwrap_or_default();
            out.list(
                &items,
                &strings(&["name", "description", "version", "author"]),
            )?;
            OK
        }
        PackCommand::Show { pack } => {
            let reply = api.post("/packs/index/search", &json!({"pack": pack}))?;
            if reply.is_null() || reply.as_array().is_some_and(Vec::is_empty) {
                bail!("Pack \"{pack}\" is not in the index.");
            }
            out.object(&reply, &[], PACK.order)?;
            OK
        }
        PackCommand::Register { packs, types } => {
            let mut body = json!({});
            if !packs.is_empty() {
                body["packs"] = json!(packs);
            }
            if !types.is_empty() {
                body["types"] = json!(types);
            }
            let reply = api.post("/packs/register", &body)?;
            if out.is_table() {
                let mut table_rows = Vec::new();
                if let Some(m) = reply.as_object() {
                    for (k, v) in m {
                        table_rows.push(json!({"content": k, "count": v}));
                    }
                }
                out.list(&table_rows, &strings(&["content", "count"]))?;
            } else {
                out.dump(&reply)?;
            }
            OK
        }
    }
}

/// Install/remove: start the pack workflow, follow it, print its outcome.
fn pack_operation(api: &Api, out: &Out, path: &str, body: &Value, packs: &[String]) -> Res {
    let events = if out.is_table() {
        run::subscribe(api, false)
    } else {
        None
    };
    let reply = api.post(path, body)?;
    let id = reply["execution_id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer has no execution_id: {reply}"))?
        .to_owned();
    let spinner = run::Spinner::new(out.is_table(), &id);
    let mut follower = run::Follower::new(&id, false, false);
    let done = follower.follow(api, events, &spinner)?;
    spinner.finish();
    let full = api
        .get_opt(&format!("/executions/{}", enc(&id)))?
        .unwrap_or(done);
    let status = full["status"].as_str().unwrap_or("").to_owned();
    let verb = if path.ends_with("uninstall") {
        "remove"
    } else {
        "install"
    };
    if status != "succeeded" {
        let error = lookup(&full, "result.error")
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the execution ended with status {status}"));
        bail!(
            "pack {verb} of {} failed (execution {id}): {error}",
            packs.join(", ")
        );
    }
    let output = lookup(&full, "result.output");
    if let Some(warnings) = output["warning_list"].as_array() {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    if verb == "remove" {
        if out.is_table() {
            println!("Removed: {}", packs.join(", "));
        } else {
            out.dump(&json!({"removed": packs, "execution_id": id}))?;
        }
        return OK;
    }
    // The refs the execution reports (a pack given as a path or URL has its own ref).
    let refs: Vec<String> = output["packs_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_else(|| packs.to_vec());
    let (items, _) =
        api.list("/packs?include_attributes=ref%2Cname%2Cdescription%2Cversion%2Cauthor")?;
    let installed: Vec<Value> = items
        .into_iter()
        .filter(|p| refs.iter().any(|r| p["ref"].as_str() == Some(r.as_str())))
        .collect();
    out.list(&installed, &strings(PACK.list_attrs))?;
    OK
}

fn policy(api: &Api, out: &Out, command: PolicyCommand) -> Res {
    match command {
        PolicyCommand::List {
            pack,
            resource_ref,
            policy_type,
            attr,
        } => {
            let mut filters = Vec::new();
            if let Some(p) = pack {
                filters.push(("pack", p));
            }
            if let Some(r) = resource_ref {
                filters.push(("resource_ref", r));
            }
            if let Some(t) = policy_type {
                filters.push(("policy_type", t));
            }
            list_resource(api, out, &POLICY, &attr, filters)
        }
        PolicyCommand::Get { reference, attr } => {
            get_resource(api, out, &POLICY, &reference, &attr)
        }
    }
}

fn inquiry(api: &Api, out: &Out, command: InquiryCommand) -> Res {
    match command {
        InquiryCommand::List { last, attr } => {
            list_resource(api, out, &INQUIRY, &attr, vec![("limit", last.to_string())])
        }
        InquiryCommand::Get { id, attr } => get_resource(api, out, &INQUIRY, &id, &attr),
        InquiryCommand::Respond { id, response } => {
            let response: Value = serde_json::from_str(&response)
                .map_err(|e| anyhow!("-r/--response is not JSON: {e}"))?;
            if !response.is_object() {
                bail!("-r/--response must be a JSON object, like '{{\"approved\": true}}'");
            }
            fetch(api, &INQUIRY, &id)?;
            let reply = api.put(
                &format!("/inquiries/{}", enc(&id)),
                &json!({"id": id, "response": response}),
            )?;
            out.object(&reply, &[], &["id", "response"])?;
            OK
        }
    }
}

fn apikey(api: &Api, out: &Out, command: ApiKeyCommand) -> Res {
    match command {
        ApiKeyCommand::Create {
            only_key,
            metadata,
            user,
        } => {
            let mut body = json!({});
            if let Some(m) = metadata {
                let m: Value = serde_json::from_str(&m)
                    .map_err(|e| anyhow!("-m/--metadata is not JSON: {e}"))?;
                body["metadata"] = m;
            }
            if let Some(u) = user {
                body["user"] = json!(u);
            }
            let created = api.post("/apikeys", &body)?;
            if only_key {
                println!("{}", created["key"].as_str().unwrap_or(""));
            } else {
                out.object(&created, &[], &["id", "user", "metadata", "key"])?;
            }
            OK
        }
        ApiKeyCommand::List { show_secrets, attr } => {
            let filters = if show_secrets {
                vec![("show_secrets", "True".to_owned())]
            } else {
                Vec::new()
            };
            list_resource(api, out, &APIKEY, &attr, filters)
        }
        ApiKeyCommand::Get { id, attr } => get_resource(api, out, &APIKEY, &id, &attr),
        ApiKeyCommand::Delete { id } => {
            let item = fetch(api, &APIKEY, &id)?;
            let real = item["id"].as_str().unwrap_or(&id).to_owned();
            api.delete(&format!("/apikeys/{}", enc(&real)))?;
            deleted(out, "apikey", &id)
        }
    }
}

//! `engagelab-webhooks`: the operators' command line for EngageLab's callback URLs, on the same
//! client the deployment's custom resource uses.
//!
//! The account comes from `ENGAGELAB_API_USER` / `ENGAGELAB_API_KEY` (never a flag, so the key
//! stays out of shell history and process lists), the host from `ENGAGELAB_API_BASE_URL`.
//! URLs are printed with their token and Basic-auth password redacted; the key is never printed.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Arg, ArgMatches, Command};

use crate::auth::Secret;
use crate::config::Env;
use crate::engagelab_api::https_client::HttpsClient;
use crate::engagelab_api::registration::WEBHOOK_TOKEN_ENV;
use crate::engagelab_api::{
    event_label, redacted_url, url_with_token, ApiConfig, EngageLabApi, EngageLabApiError, StartupError, UnknownEvent,
    Webhook, WebhookEvent, WebhookSettings, API_KEY_ENV, API_USER_ENV, BASE_URL_ENV,
};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Usage(#[from] clap::Error),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    EngageLab(#[from] EngageLabApiError),
    #[error(transparent)]
    Events(#[from] UnknownEvent),
    #[error("--events names no event")]
    NoEvents,
    #[error("update needs at least one of --url, --events, --api-user")]
    NothingToUpdate,
    #[error("writing the output failed: {0}")]
    Output(#[from] std::io::Error),
}

/// The whole program: arguments and environment of this process, output on stdout.
pub async fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    match run(std::env::args_os(), &env, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(error)) => {
            let _ = error.print();
            if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("engagelab-webhooks: {error}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run<I, T>(args: I, env: Env<'_>, out: &mut dyn Write) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let config = ApiConfig::from_env(env).map_err(StartupError::from)?;
    let timeout = Duration::from_secs(*matches.get_one::<u64>("timeout").expect("timeout has a default"));
    let api = EngageLabApi::new(HttpsClient::new().map_err(StartupError::from)?, &config).with_timeout(timeout);
    let token = env(WEBHOOK_TOKEN_ENV)
        .and_then(|tokens| tokens.split(',').map(str::trim).find(|token| !token.is_empty()).map(Secret::new));

    match matches.subcommand().expect("a subcommand is required") {
        ("list", arguments) => {
            let webhooks = api.list(arguments.get_one::<String>("api-user").map(String::as_str)).await?;
            writeln!(out, "id\tapi_user\tevents\turl")?;
            for webhook in &webhooks {
                writeln!(out, "{}", row(webhook))?;
            }
        }
        ("add", arguments) => {
            let mut settings = settings(arguments, token.as_ref())?;
            settings.events.get_or_insert_with(|| WebhookEvent::codes(&WebhookEvent::ALL));
            let webhook = api.add(&settings).await?;
            writeln!(out, "added webhook {}", webhook.id)?;
            writeln!(out, "{}", row(&webhook))?;
        }
        ("update", arguments) => {
            let id = *arguments.get_one::<u64>("id").expect("id is required");
            let settings = settings(arguments, token.as_ref())?;
            if settings == WebhookSettings::default() {
                return Err(CliError::NothingToUpdate);
            }
            match api.modify(id, &settings).await? {
                0 => writeln!(out, "webhook {id}: nothing changed (already so, or no such webhook)")?,
                _ => writeln!(out, "updated webhook {id}")?,
            }
        }
        ("delete", arguments) => {
            let id = *arguments.get_one::<u64>("id").expect("id is required");
            match api.delete(id).await {
                Ok(0) => writeln!(out, "webhook {id} was already gone")?,
                Ok(_) => writeln!(out, "deleted webhook {id}")?,
                Err(error) if error.is_not_found() => writeln!(out, "webhook {id} was already gone")?,
                Err(error) => return Err(error.into()),
            }
        }
        (other, _) => unreachable!("clap accepts only the declared subcommands, not {other}"),
    }
    Ok(())
}

fn command() -> Command {
    let api_user = Arg::new("api-user")
        .long("api-user")
        .value_name("API_USER")
        .help("the api_user the callback belongs to (default: every api_user of the account)");
    let events = Arg::new("events")
        .long("events")
        .value_name("NAMES")
        .help("comma-separated: deliver, report_spam, invalid, soft_bounce, click, open, unsubscribe, request, sent");
    let id =
        Arg::new("id").value_name("ID").required(true).value_parser(value_parser!(u64)).help("EngageLab's webhook id");
    let url = Arg::new("url").long("url").value_name("URL").help("the callback URL");
    Command::new("engagelab-webhooks")
        .about("List, add, update and delete EngageLab callback URLs")
        .after_help(format!(
            "Environment: {API_USER_ENV} and {API_KEY_ENV} (required), {BASE_URL_ENV} (default the \
             documented host), {WEBHOOK_TOKEN_ENV} (when set, added to --url as ?token=)."
        ))
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .global(true)
                .default_value("10")
                .value_parser(value_parser!(u64).range(1..=300))
                .help("give up on a call after this many seconds"),
        )
        .subcommand(Command::new("list").about("list the account's callback URLs").arg(api_user.clone()))
        .subcommand(
            Command::new("add")
                .about("register a callback URL (default: every event)")
                .arg(url.clone().required(true))
                .arg(events.clone())
                .arg(api_user.clone()),
        )
        .subcommand(
            Command::new("update")
                .about("change a callback's URL, events or api_user")
                .arg(id.clone())
                .arg(url)
                .arg(events)
                .arg(api_user),
        )
        .subcommand(Command::new("delete").about("delete a callback").arg(id))
}

fn settings(arguments: &ArgMatches, token: Option<&Secret>) -> Result<WebhookSettings, CliError> {
    let events = match arguments.get_one::<String>("events") {
        Some(names) => {
            let events = WebhookEvent::parse_list(names)?;
            if events.is_empty() {
                return Err(CliError::NoEvents);
            }
            Some(WebhookEvent::codes(&events))
        }
        None => None,
    };
    Ok(WebhookSettings {
        url: arguments.get_one::<String>("url").map(|url| url_with_token(url, token)),
        api_user: arguments.get_one::<String>("api-user").cloned(),
        events,
    })
}

fn row(webhook: &Webhook) -> String {
    let events = if webhook.events.is_empty() {
        "-".to_owned()
    } else {
        webhook.events.iter().map(|code| event_label(*code)).collect::<Vec<_>>().join(",")
    };
    format!(
        "{}\t{}\t{}\t{}",
        webhook.id,
        webhook.api_user.as_deref().unwrap_or("-"),
        events,
        redacted_url(&webhook.url)
    )
}

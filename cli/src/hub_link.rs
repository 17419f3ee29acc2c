//! `tandem share link --hub`, `share links`, `share unlink`: threads shared
//! through a hub (DESIGN §7). The app-server creates the share, keeps its
//! secret and syncs it; these commands only ask it to, and show how far each
//! link has synced.

use anyhow::Result;
use clap::Args;
use tandem_client::ClientError;
use tandem_protocol::hub::{HubLink, HubLinkParams, HubLinksParams, HubUnlinkParams, parse_duration};
use tandem_protocol::methods::{HubLinkCreate, HubLinkList, HubUnlink};

use crate::conn::{ConnArgs, connect, resolve, thread_query};
use crate::exit::{self, Fail};

#[derive(Args, Debug)]
pub struct LinkArgs {
    /// The thread: its id, or any unique start of it.
    #[arg(long, value_name = "ID")]
    thread: String,
    /// The hub to share through; `--hub` alone: `url` under [hub] in the app-server's config.toml.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    hub: Option<String>,
    /// Without --hub: the link can also post prompts, interrupt, and turn sharing on or off.
    #[arg(long, conflicts_with = "hub")]
    write: bool,
    /// How long the link lives: 30s, 15m, 2h, 7d, 1w [default: until revoked, or unlinked with --delete].
    #[arg(long, value_name = "DURATION")]
    expire: Option<String>,
    /// Send the thread as it is: no redaction of keys, tokens and passwords.
    #[arg(long)]
    no_redact: bool,
    /// Print the link as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct LinksArgs {
    /// Only this thread's link.
    #[arg(long, value_name = "ID")]
    thread: Option<String>,
    /// One link object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct UnlinkArgs {
    /// The thread: its id, or any unique start of it.
    #[arg(long, value_name = "ID")]
    thread: String,
    /// Also delete the share and everything of it from the hub.
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

/// A hub's refusal in exit codes: unreachable is 5, like an app-server.
pub(crate) fn hub_fail(e: ClientError) -> Fail {
    if let ClientError::Rpc(rpc) = &e
        && rpc.reason() == Some("hubUnreachable")
    {
        return Fail::new(
            exit::UNREACHABLE,
            format!("{}; check the URL, or try again once the hub is up", rpc.message),
        );
    }
    Fail::from(e)
}

fn state(link: &HubLink) -> String {
    match link.state.as_str() {
        "pending" => format!("pending {} events", link.pending),
        "retrying" => format!(
            "pending {} events, retrying: {}",
            link.pending,
            link.error.as_deref().unwrap_or("the hub did not answer")
        ),
        "synced" => "synced".to_owned(),
        other => format!("stopped ({other}): {}", link.error.as_deref().unwrap_or("")),
    }
}

/// Events the hub got altered so the rest could go on: `; 1 truncated, 0
/// withheld to fit the hub (last: seq 5 truncated …)`, or nothing.
fn cuts(link: &HubLink) -> String {
    let c = &link.cuts;
    if c.is_empty() {
        return String::new();
    }
    format!("; {} truncated, {} withheld to fit the hub (last: {})", c.truncated, c.withheld, c.last)
}

pub async fn link(args: LinkArgs) -> Result<u8> {
    let query = thread_query(&args.thread)?;
    if let Some(expire) = &args.expire {
        parse_duration(expire).map_err(|e| Fail::usage(format!("--expire: {e}")))?;
    }
    let hub = match args.hub {
        // Links without a hub are the web listener's (DESIGN §6).
        None => {
            if args.no_redact {
                return Err(Fail::usage(
                    "--no-redact is for hub links (with --hub): a local link shows the thread as it is",
                )
                .into());
            }
            return crate::share::link(&args.thread, args.write, args.expire.as_deref(), args.json, &args.conn).await;
        }
        Some(h) if h.is_empty() => None,
        Some(h) if !(h.starts_with("http://") || h.starts_with("https://")) => {
            return Err(Fail::usage(format!("--hub {h:?} must start with http:// or https://")).into());
        }
        Some(h) => Some(h),
    };
    let client = connect(&args.conn).await?;
    let thread_id = resolve(&client, &query).await?;
    let params = HubLinkParams { thread_id, hub, expire: args.expire, no_redact: args.no_redact };
    let link = client.call::<HubLinkCreate>(&params).await.map_err(hub_fail)?.link;
    if args.json {
        say!("{}", serde_json::to_string(&link)?);
    } else {
        say!("{}", link.url);
    }
    Ok(0)
}

pub async fn links(args: LinksArgs) -> Result<u8> {
    // This app-server's own links first (none without an http listener).
    crate::share::links(args.thread.as_deref(), args.json, &args.conn).await?;
    let query = args.thread.as_deref().map(thread_query).transpose()?;
    let client = connect(&args.conn).await?;
    let thread_id = match &query {
        Some(q) => Some(resolve(&client, q).await?),
        None => None,
    };
    let links = client.call::<HubLinkList>(&HubLinksParams { thread_id }).await.map_err(hub_fail)?.data;
    for link in &links {
        if args.json {
            say!("{}", serde_json::to_string(link)?);
        } else {
            say!("{}  {}  {}{}", &link.thread_id[..link.thread_id.len().min(13)], link.url, state(link), cuts(link));
        }
    }
    if links.is_empty() && !args.json {
        eprintln!("no hub links; `tandem share link --thread ID --hub URL` makes one");
    }
    Ok(0)
}

pub async fn unlink(args: UnlinkArgs) -> Result<u8> {
    let query = thread_query(&args.thread)?;
    let client = connect(&args.conn).await?;
    let thread_id = resolve(&client, &query).await?;
    let params = HubUnlinkParams { thread_id: thread_id.clone(), delete: args.delete };
    let done = client.call::<HubUnlink>(&params).await.map_err(hub_fail)?;
    if !done.unlinked {
        return Err(Fail::new(exit::FAILURE, format!("thread {thread_id} is not linked to a hub")).into());
    }
    if done.deleted {
        say!("unlinked {thread_id}; deleted from the hub");
    } else {
        say!("unlinked {thread_id}");
    }
    Ok(0)
}

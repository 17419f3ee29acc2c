//! `tandem share …`: the script-facing clients. Arguments are checked before
//! connecting wherever the client can, so bad input changes nothing anywhere.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Result;
use tandem_client::{Client, ClientError, Subscription, all_threads};
use tandem_home::Home;
use tandem_protocol::ids::unique_prefixes;
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, ErrorCode, Event, EventBody, MAX_FRAME_BYTES, Position, RpcError, TurnStatus};

use crate::conn::{ConnArgs, client_info, connect, resolve, thread_query};
use crate::exit::{self, Fail};
use crate::render::{Transcript, parse};

/// How long `post` waits for `turn/completed` after Ctrl-C interrupted its turn.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// The longest pause between `tail`'s reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(3);

fn position(raw: Option<&str>) -> Result<Option<Position>, Fail> {
    raw.map(|s| Position::parse(s).map_err(|e| Fail::usage(format!("--{e}")))).transpose()
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // The reader went away (`| head`): that is how pipes end, not a failure.
        Fail::new(0, String::new()).into()
    } else {
        anyhow::anyhow!("cannot write to stdout: {e}")
    }
}

pub(crate) async fn new(title: Option<String>, json: bool, conn: &ConnArgs) -> Result<u8> {
    let client = connect(conn).await?;
    let params = ThreadStartParams { title, ..Default::default() };
    let thread = client.call::<ThreadStart>(&params).await.map_err(Fail::from)?.thread;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&thread)?).map_err(stdout_error)?;
    } else {
        writeln!(out, "{}", thread.id).map_err(stdout_error)?;
    }
    Ok(0)
}

/// Every thread, the most recently active first. The text form leads with
/// each id's shortest unique start (what `--thread` accepts).
pub(crate) async fn list(json: bool, conn: &ConnArgs) -> Result<u8> {
    let client = connect(conn).await?;
    let threads = all_threads(&client).await.map_err(Fail::from)?;
    let mut out = std::io::stdout().lock();
    let shorts = unique_prefixes(&threads.iter().map(|t| t.id.as_str()).collect::<Vec<_>>());
    let w = shorts.iter().map(|s| s.len()).max().unwrap_or(8);
    if !json && !threads.is_empty() {
        writeln!(out, "{:<w$}  {:<24}  {:>6}  {:<7}  TITLE", "THREAD", "LAST ACTIVITY", "EVENTS", "STATUS")
            .map_err(stdout_error)?;
    }
    for (t, short) in threads.iter().zip(shorts) {
        if json {
            writeln!(out, "{}", serde_json::to_string(t)?)
        } else {
            let (state, by) = match &t.active_turn {
                Some(a) => ("running", format!("  (turn by {})", a.client.name)),
                None => ("idle", String::new()),
            };
            let title = t.title.as_deref().unwrap_or("");
            writeln!(out, "{short:<w$}  {:<24}  {:>6}  {state:<7}  {title}{by}", t.updated_at, t.last_seq)
        }
        .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    Ok(0)
}

fn read_prompt(prompt: &str) -> Result<String, Fail> {
    let text = if prompt == "-" {
        let cannot = |e: std::io::Error| Fail::usage(format!("cannot read the prompt from stdin: {e}"));
        // Never more than the server takes (and the newline) in memory: past
        // that, only count the rest, to say how much it was.
        let keep = MAX_FRAME_BYTES as u64 + 2;
        let mut stdin = std::io::stdin().lock();
        let mut bytes = Vec::new();
        (&mut stdin).take(keep + 1).read_to_end(&mut bytes).map_err(cannot)?;
        if bytes.len() as u64 > keep {
            let rest = std::io::copy(&mut stdin, &mut std::io::sink()).map_err(cannot)?;
            return Err(prompt_too_large(bytes.len() + rest as usize, None));
        }
        let s = String::from_utf8(bytes).map_err(|_| Fail::usage("the prompt on stdin is not UTF-8 text"))?;
        // `echo text |` ends with a newline that is not part of the prompt.
        let trimmed = s.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&s);
        trimmed.to_owned()
    } else {
        prompt.to_owned()
    };
    if text.trim().is_empty() {
        return Err(Fail::usage("the prompt is empty; give --prompt TEXT, or --prompt - with the text on stdin"));
    }
    Ok(text)
}

pub(crate) async fn post(
    thread: &str,
    prompt: &str,
    no_wait: bool,
    wait_idle: Option<Duration>,
    json: bool,
    conn: &ConnArgs,
) -> Result<u8> {
    let query = thread_query(thread)?;
    let input = read_prompt(prompt)?;
    if input.len() > MAX_FRAME_BYTES {
        return Err(prompt_too_large(input.len(), None).into());
    }
    let client = connect(conn).await?;
    let thread = resolve(&client, &query).await?;
    let params = TurnStartParams { thread_id: thread.clone(), input, client: None };
    // Taken before posting, so Ctrl-C while waiting for an idle thread is
    // ours to answer too (130 with a line), not the default kill.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let turn = start_turn(&client, &params, wait_idle, &mut sigint).await?;
    let mut out = std::io::stdout().lock();
    if no_wait {
        if json {
            writeln!(out, "{}", serde_json::to_string(&turn)?).map_err(stdout_error)?;
        } else {
            writeln!(out, "{}", turn.id).map_err(stdout_error)?;
        }
        return Ok(0);
    }
    drop(out);
    // Everything of our turn is at or after its start time; other events in the
    // same millisecond are filtered out by turn id.
    let from = Position::parse(&turn.started_at).map_err(|e| anyhow::anyhow!("server sent a bad startedAt: {e}"))?;
    let mut sub = client
        .subscribe(&ThreadSubscribeParams { thread_id: thread.clone(), from: Some(from) })
        .await
        .map_err(Fail::from)?;
    let mut transcript = Transcript::default();
    let mut interrupted_at: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match interrupted_at {
                Some(t) => tokio::time::sleep_until(t + INTERRUPT_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            raw = sub.next() => {
                let Some(raw) = raw else {
                    return Err(Fail::new(exit::UNREACHABLE, format!(
                        "lost the connection to the app-server at {} while turn {} was running; follow it with `tandem share tail --thread {thread}`",
                        client.endpoint(), turn.id
                    )).into());
                };
                let Some(event) = parse(&raw) else { continue };
                if event.body.turn_id() != Some(turn.id.as_str()) {
                    continue;
                }
                transcript.write(&mut std::io::stdout().lock(), &raw, Some(&event), json).map_err(stdout_error)?;
                if let EventBody::TurnCompleted { status, .. } = event.body {
                    if interrupted_at.is_some() {
                        return Ok(exit::INTERRUPTED);
                    }
                    return Ok(if status == TurnStatus::Completed { 0 } else { exit::FAILURE });
                }
            }
            _ = sigint.recv() => {
                if interrupted_at.is_some() {
                    // A second Ctrl-C: stop waiting for the turn to wind down.
                    return Ok(exit::INTERRUPTED);
                }
                interrupted_at = Some(tokio::time::Instant::now());
                // Keep reading the stream while the interrupt travels: a full
                // subscription buffer would otherwise hold up its answer.
                let params = TurnInterruptParams { thread_id: thread.clone(), turn_id: Some(turn.id.clone()) };
                let (client, turn_id) = (client.clone(), turn.id.clone());
                tokio::spawn(async move {
                    if let Err(e) = client.call::<TurnInterrupt>(&params).await {
                        eprintln!("tandem: could not interrupt turn {turn_id}: {e}");
                    }
                });
            }
            _ = grace => return Ok(exit::INTERRUPTED),
        }
    }
}

/// A prompt the app-server would refuse (exit 2): `request` is the size of
/// the request it makes, when that is what passes the limit.
fn prompt_too_large(prompt: usize, request: Option<usize>) -> Fail {
    let encoded = match request {
        Some(r) => format!(", {r} bytes as a JSON request (quotes, backslashes and control characters are escaped)"),
        None => String::new(),
    };
    Fail::usage(format!(
        "the prompt is {prompt} bytes{encoded}; the app-server takes at most {MAX_FRAME_BYTES} bytes ({} MiB) per request, prompt included, so nothing was posted: shorten it",
        MAX_FRAME_BYTES >> 20
    ))
}

/// `turn/start`, and with `--wait-idle`, on `busy` wait (bounded) for the
/// running turn to end and try again.
async fn start_turn(
    client: &Client,
    params: &TurnStartParams,
    wait_idle: Option<Duration>,
    sigint: &mut tokio::signal::unix::Signal,
) -> Result<tandem_protocol::Turn, Fail> {
    let deadline = wait_idle.map(|d| tokio::time::Instant::now() + d);
    let mut watcher: Option<Subscription> = None;
    loop {
        let err = match client.call::<TurnStart>(params).await {
            Ok(r) => {
                if let Some(w) = watcher {
                    let _ = client.call::<ThreadUnsubscribe>(&ThreadUnsubscribeParams { subscription: w.id }).await;
                }
                return Ok(r.turn);
            }
            Err(ClientError::Rpc(e)) if e.is(ErrorCode::Busy) => e,
            Err(ClientError::TooLarge { bytes, .. }) => return Err(prompt_too_large(params.input.len(), Some(bytes))),
            Err(e) => return Err(e.into()),
        };
        let Some(deadline) = deadline else {
            return Err(busy_fail(&err, None));
        };
        let Some(w) = watcher.as_mut() else {
            // Watch from now, then try again at once: the turn may have ended
            // between the refusal and the subscription.
            let sub = client
                .subscribe(&ThreadSubscribeParams { thread_id: params.thread_id.clone(), from: None })
                .await
                .map_err(Fail::from)?;
            watcher = Some(sub);
            eprintln!(
                "tandem: {}; waiting up to {}s for it to end (Ctrl-C gives up)…",
                err.message,
                wait_idle.unwrap_or_default().as_secs()
            );
            continue;
        };
        loop {
            tokio::select! {
                raw = w.next() => match raw {
                    Some(raw) => {
                        if parse(&raw).is_some_and(|e: Event| matches!(e.body, EventBody::TurnCompleted { .. })) {
                            break;
                        }
                    }
                    None => return Err(Fail::from(ClientError::Disconnected { endpoint: client.endpoint().to_owned() })),
                },
                _ = tokio::time::sleep_until(deadline) => return Err(busy_fail(&err, wait_idle)),
                _ = sigint.recv() => {
                    return Err(Fail::new(
                        exit::INTERRUPTED,
                        format!("interrupted while waiting for thread {} to be idle; nothing was posted", params.thread_id),
                    ));
                }
            }
        }
    }
}

fn busy_fail(err: &RpcError, waited: Option<Duration>) -> Fail {
    let by = err
        .data
        .as_ref()
        .and_then(|d| d.get("startedBy"))
        .and_then(|c| serde_json::from_value::<ClientInfo>(c.clone()).ok())
        .map(|c| format!(" (started by {c})"))
        .unwrap_or_default();
    let hint = match waited {
        Some(d) => format!("; it was still busy after waiting {}s", d.as_secs()),
        None => "; try again when it ends, or pass --wait-idle to wait for it".to_owned(),
    };
    Fail::new(exit::BUSY, format!("{}{by}{hint}", err.message))
}

/// Follows a thread. When the connection drops (the app-server restarted),
/// it says so on stderr, reconnects with backoff (without starting a server:
/// a `stop` is not undone) and resumes after the last seq it printed, so
/// nothing is missed or repeated. `--no-reconnect` exits 5 instead.
pub(crate) async fn tail(
    thread: &str,
    from: Option<&str>,
    json: bool,
    no_reconnect: bool,
    conn: &ConnArgs,
) -> Result<u8> {
    let query = thread_query(thread)?;
    let from = position(from)?;
    let mut client = connect(conn).await?;
    let thread = resolve(&client, &query).await?;
    // "New events only" is pinned to a seq now, so a reconnect later resumes
    // from the same point rather than from whatever is new by then.
    let mut next = match from {
        Some(p) => p,
        None => {
            let t = client.call::<ThreadRead>(&ThreadReadParams { thread_id: thread.clone() }).await;
            Position::Seq(t.map_err(Fail::from)?.thread.last_seq + 1)
        }
    };
    let mut last_seq = 0u64;
    let mut transcript = Transcript::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let params = ThreadSubscribeParams { thread_id: thread.clone(), from: Some(next.clone()) };
        let subscribed = tokio::select! {
            r = client.subscribe(&params) => r,
            _ = &mut ctrl_c => return Ok(exit::INTERRUPTED),
        };
        match subscribed {
            Ok(mut sub) => loop {
                tokio::select! {
                    raw = sub.next() => {
                        let Some(raw) = raw else {
                            // Ended by the server (a revoked link, sharing
                            // turned off): no use reconnecting.
                            if let Some(e) = sub.ended() {
                                return Err(Fail::new(exit::FAILURE, format!("the app-server ended this tail: {e}")).into());
                            }
                            break;
                        };
                        let event = parse(&raw);
                        if let Some(e) = &event {
                            if e.seq <= last_seq {
                                continue;
                            }
                            last_seq = e.seq;
                        }
                        let event = if json { None } else { event };
                        transcript.write(&mut std::io::stdout().lock(), &raw, event.as_ref(), json).map_err(stdout_error)?;
                    }
                    _ = &mut ctrl_c => return Ok(exit::INTERRUPTED),
                }
            },
            Err(e) if !e.is_transport() => return Err(Fail::from(e).into()),
            Err(_) => {}
        }
        if last_seq > 0 {
            next = Position::Seq(last_seq + 1);
        }
        let resume = match &next {
            Position::Seq(n) => format!("--from {n}"),
            Position::Time { .. } => "the same --from".to_owned(),
        };
        if no_reconnect {
            return Err(Fail::new(
                exit::UNREACHABLE,
                format!("lost the connection to the app-server at {}; resume with {resume}", client.endpoint()),
            )
            .into());
        }
        eprintln!(
            "tandem: lost the connection to the app-server at {}; reconnecting (Ctrl-C stops)…",
            client.endpoint()
        );
        let mut delay = Duration::from_millis(200);
        client = loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = &mut ctrl_c => return Ok(exit::INTERRUPTED),
            }
            match reconnect(conn).await {
                Ok(c) => break c,
                // A server that answers but cannot be used will not get better.
                Err(e @ ClientError::ProtocolMismatch { .. }) => return Err(Fail::from(e).into()),
                Err(_) => delay = (delay * 2).min(RECONNECT_MAX_DELAY),
            }
        };
        match &next {
            Position::Seq(n) => eprintln!("tandem: reconnected; resuming from seq {n}"),
            Position::Time { .. } => eprintln!("tandem: reconnected; resuming from the --from time"),
        }
    }
}

/// Connects again after a lost connection, never starting a server.
async fn reconnect(conn: &ConnArgs) -> Result<Client, ClientError> {
    let endpoint = match conn.endpoint() {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => tandem_client::Endpoint::Unix(Home::from_env().socket_path()),
        Err(f) => return Err(ClientError::Unreachable { endpoint: "--server".into(), reason: f.to_string() }),
    };
    Client::connect(&endpoint, client_info()).await
}

pub(crate) async fn get(
    thread: &str,
    from: Option<&str>,
    limit: Option<usize>,
    json: bool,
    conn: &ConnArgs,
) -> Result<u8> {
    let query = thread_query(thread)?;
    let mut from = position(from)?;
    if limit == Some(0) {
        return Err(Fail::usage("--limit must be at least 1").into());
    }
    let client = connect(conn).await?;
    let thread = resolve(&client, &query).await?;
    let mut remaining = limit;
    let mut transcript = Transcript::default();
    let mut out = std::io::stdout().lock();
    loop {
        let page_limit = remaining.map(|r| r.min(tandem_protocol::MAX_PAGE));
        let page = client
            .call::<ThreadEvents>(&ThreadEventsParams {
                thread_id: thread.clone(),
                from: from.clone(),
                limit: page_limit,
            })
            .await
            .map_err(Fail::from)?;
        for raw in &page.events {
            let event = if json { None } else { parse(raw) };
            transcript.write(&mut out, raw, event.as_ref(), json).map_err(stdout_error)?;
        }
        if let Some(r) = remaining.as_mut() {
            *r -= page.events.len().min(*r);
            if *r == 0 {
                break;
            }
        }
        match page.next {
            Some(next) => from = Some(Position::Seq(next)),
            None => break,
        }
    }
    Ok(0)
}

pub(crate) async fn interrupt(thread: &str, conn: &ConnArgs) -> Result<u8> {
    let query = thread_query(thread)?;
    let client = connect(conn).await?;
    let thread = resolve(&client, &query).await?;
    let r = client
        .call::<TurnInterrupt>(&TurnInterruptParams { thread_id: thread.clone(), turn_id: None })
        .await
        .map_err(Fail::from)?;
    if r.interrupted {
        say!("interrupted the running turn on {thread}");
    } else {
        say!("nothing to interrupt: thread {thread} is idle");
    }
    Ok(0)
}

/// `share link` without `--hub`: a link to this app-server's web viewer.
pub(crate) async fn link(thread: &str, write: bool, expire: Option<&str>, json: bool, conn: &ConnArgs) -> Result<u8> {
    let query = thread_query(thread)?;
    let expires_in = expire
        .map(|e| tandem_protocol::time::parse_duration(e).map_err(|why| Fail::usage(format!("--expire: {why}"))))
        .transpose()?;
    let client = connect(conn).await?;
    let thread = resolve(&client, &query).await?;
    let scope = if write { LinkScope::Write } else { LinkScope::Read };
    let r = client
        .call::<LinkCreate>(&LinkCreateParams { thread_id: thread, scope: Some(scope), expires_in })
        .await
        .map_err(Fail::from)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&r)?).map_err(stdout_error)?;
    } else {
        writeln!(out, "{}", r.url).map_err(stdout_error)?;
    }
    Ok(0)
}

/// `share links`, this app-server's own links (the hub's follow them).
pub(crate) async fn links(thread: Option<&str>, json: bool, conn: &ConnArgs) -> Result<u8> {
    let query = thread.map(thread_query).transpose()?;
    let client = connect(conn).await?;
    let thread = match &query {
        Some(q) => Some(resolve(&client, q).await?),
        None => None,
    };
    let r = client.call::<LinkList>(&LinkListParams { thread_id: thread }).await.map_err(Fail::from)?;
    let mut out = std::io::stdout().lock();
    if !json && !r.data.is_empty() {
        writeln!(
            out,
            "{:<16}  {:<5}  {:<24}  {:<24}  {:<24}  THREAD",
            "ID", "SCOPE", "CREATED", "EXPIRES", "LAST USED"
        )
        .map_err(stdout_error)?;
    }
    for l in &r.data {
        if json {
            writeln!(out, "{}", serde_json::to_string(l)?)
        } else {
            let expires = match (&l.expires_at, l.expired) {
                (Some(e), true) => format!("{e} (expired)"),
                (Some(e), false) => e.clone(),
                (None, _) => "never".into(),
            };
            writeln!(
                out,
                "{:<16}  {:<5}  {:<24}  {:<24}  {:<24}  {}",
                l.id,
                l.scope.as_str(),
                l.created_at,
                expires,
                l.last_used_at.as_deref().unwrap_or("never"),
                l.thread_id
            )
        }
        .map_err(stdout_error)?;
    }
    Ok(0)
}

pub(crate) async fn revoke(id: Option<&str>, thread: Option<&str>, conn: &ConnArgs) -> Result<u8> {
    let query = thread.map(thread_query).transpose()?;
    let client = connect(conn).await?;
    let thread = match &query {
        Some(q) => Some(resolve(&client, q).await?),
        None => None,
    };
    let r = match client
        .call::<LinkRevoke>(&LinkRevokeParams { link_id: id.map(str::to_owned), thread_id: thread.clone() })
        .await
    {
        Ok(r) => r,
        // What was asked for is so: say since when, and succeed.
        Err(ClientError::Rpc(e)) if e.reason() == Some("linkRevoked") => {
            say!("{}", e.message);
            return Ok(0);
        }
        Err(e) => return Err(Fail::from(e).into()),
    };
    if r.revoked.is_empty() {
        say!("no links to revoke for thread {}", thread.unwrap_or_default());
    }
    for id in &r.revoked {
        say!("revoked {id}");
    }
    Ok(0)
}

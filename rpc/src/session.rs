//! One connection's session: who the client said it is, what its token grants,
//! which subscriptions it owns, and the dispatch of each request to the engine.
//! It sees parsed messages, never bytes (a socket line and a WebSocket text
//! frame arrive here the same way), and answers by queueing lines on the
//! connection's outbound queue.

use std::collections::HashMap;

use serde::Serialize;
use tandem_protocol::message::{Id, Incoming, error_line, parse_line, response_line};
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, PROTOCOL_VERSION, RpcError};
use tokio::task::JoinHandle;

use crate::access::{Gate, Grant};
use crate::context::Context;
use crate::hub_sync::HubSync;
use crate::outbound::Outbound;
use crate::pump::pump;
use tandem_engine::Engine;

/// Most subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// Per-connection state.
pub struct Session {
    engine: Engine,
    grant: Grant,
    gate: Option<Gate>,
    listeners: std::sync::Arc<Vec<String>>,
    http_url: Option<String>,
    launch_args: std::sync::Arc<Vec<String>>,
    client: ClientInfo,
    subs: HashMap<u64, JoinHandle<()>>,
    next_sub: u64,
    out: Outbound,
    hub: Option<HubSync>,
}

impl Session {
    /// A session of a connection admitted as `grant`.
    pub fn new(ctx: &Context, grant: Grant, out: Outbound) -> Self {
        Session {
            engine: ctx.engine.clone(),
            grant,
            gate: ctx.gate.clone(),
            listeners: std::sync::Arc::clone(&ctx.listeners),
            http_url: ctx.http_url.clone(),
            launch_args: std::sync::Arc::clone(&ctx.launch_args),
            client: ClientInfo::anonymous(),
            subs: HashMap::new(),
            next_sub: 1,
            out,
            hub: ctx.hub.clone(),
        }
    }

    /// `hub/*` through this server's hub links: the owner's only.
    fn hub(&self) -> Result<&HubSync, RpcError> {
        if !matches!(self.grant, Grant::Owner) {
            return Err(RpcError::forbidden("only the owner can share threads through a hub"));
        }
        self.hub.as_ref().ok_or_else(|| RpcError::invalid_request("this server does not sync threads to hubs"))
    }

    /// Queues a line for the client, waiting while the connection's outbound
    /// budget is spent (so a client that does not read stops being read); a
    /// closed connection is not an error here.
    pub async fn send(&self, line: String) {
        let _ = self.out.send(line).await;
    }

    /// Handles one line from the client.
    pub async fn handle_line(&mut self, line: &[u8]) {
        match parse_line(line) {
            None => {}
            Some(Incoming::Request { id, method, params }) => match Request::parse(&method, params) {
                Ok(req) => self.dispatch(id, req).await,
                Err(e) => self.send(error_line(&id, &e)).await,
            },
            Some(Incoming::Notification { method, .. }) => {
                tracing::debug!(%method, "ignoring a notification from a client");
            }
            Some(Incoming::Response { .. }) => {
                tracing::debug!("ignoring a response from a client");
            }
            Some(Incoming::Invalid { id, error }) => self.send(error_line(&id, &error)).await,
        }
    }

    async fn dispatch(&mut self, id: Id, req: Request) {
        let method = req.method();
        // A link is checked on every request: it may have been revoked, or
        // its thread unshared, since the connection was admitted.
        if let Grant::Link(link) = &self.grant
            && let Err(e) = link.check(&self.engine).and_then(|()| link.allows(&req))
        {
            tracing::debug!(method, link = %link.id, "refused a link's request");
            self.send(error_line(&id, &e)).await;
            return;
        }
        let engine = self.engine.clone();
        let line = match req {
            Request::Initialize(p) => {
                self.client = p.client_info;
                reply(
                    &id,
                    Ok(InitializeResult {
                        server_info: ServerInfo {
                            name: "tandem-app-server".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            pid: Some(std::process::id()),
                            agent: Some(engine.agent_info()),
                            launch_args: match self.grant {
                                Grant::Owner => self.launch_args.to_vec(),
                                Grant::Link(_) => Vec::new(),
                            },
                            listeners: match self.grant {
                                Grant::Owner => self.listeners.to_vec(),
                                Grant::Link(_) => Vec::new(),
                            },
                        },
                        protocol_version: PROTOCOL_VERSION,
                    }),
                )
            }
            Request::ThreadStart(p) => {
                reply(&id, engine.thread_start(p, &self.client).await.map(|thread| ThreadResult { thread }))
            }
            Request::ThreadAppend(p) => {
                reply(&id, engine.thread_append(p, &self.client).await.map(|thread| ThreadResult { thread }))
            }
            Request::ThreadList(p) => reply(&id, engine.thread_list(p)),
            Request::ThreadRead(p) => reply(&id, engine.thread_read(p).map(|thread| ThreadResult { thread })),
            Request::ThreadUpdate(p) => reply(&id, engine.thread_update(p).await.map(|thread| ThreadResult { thread })),
            Request::ThreadEvents(p) => reply(&id, engine.thread_events(p).await),
            Request::ThreadSubscribe(p) => match self.subscribe(&id, p).await {
                Ok(()) => return,
                Err(e) => error_line(&id, &e),
            },
            Request::ThreadUnsubscribe(p) => {
                let unsubscribed = match self.subs.remove(&p.subscription) {
                    Some(task) => {
                        task.abort();
                        true
                    }
                    None => false,
                };
                reply(&id, Ok(ThreadUnsubscribeResult { unsubscribed }))
            }
            Request::TurnStart(p) => {
                reply(&id, engine.turn_start(p, &self.client).await.map(|turn| TurnResult { turn }))
            }
            Request::TurnInterrupt(p) => reply(
                &id,
                engine.turn_interrupt(p, &self.client).map(|interrupted| TurnInterruptResult { interrupted }),
            ),
            Request::HubLinkCreate(p) => match self.hub() {
                Ok(hub) => reply(&id, hub.link(p).await),
                Err(e) => error_line(&id, &e),
            },
            Request::HubLinkList(p) => reply(&id, self.hub().and_then(|hub| hub.links(p))),
            Request::HubUnlink(p) => match self.hub() {
                Ok(hub) => reply(&id, hub.unlink(p).await),
                Err(e) => error_line(&id, &e),
            },
            Request::LinkCreate(p) => reply(&id, self.link_create(p)),
            Request::LinkList(p) => reply(&id, self.link_list(p)),
            Request::LinkRevoke(p) => reply(&id, self.link_revoke(p)),
            Request::AccessRead(_) => reply(
                &id,
                Ok(match &self.grant {
                    Grant::Owner => AccessReadResult { owner: true, link: None },
                    Grant::Link(link) => AccessReadResult { owner: false, link: link.public() },
                }),
            ),
        };
        tracing::trace!(method, "answered");
        self.send(line).await;
    }

    /// Answers the subscribe request itself, before the first notification.
    async fn subscribe(&mut self, id: &Id, p: ThreadSubscribeParams) -> Result<(), RpcError> {
        self.engine.thread_read(ThreadReadParams { thread_id: p.thread_id.clone() })?;
        self.subs.retain(|_, task| !task.is_finished());
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(RpcError::invalid_params(format!(
                "this connection already has {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe some first"
            )));
        }
        let tail = self.engine.follow(&p.thread_id, p.from).await?;
        let sub = self.next_sub;
        self.next_sub += 1;
        self.send(response_line(id, &ThreadSubscribeResult { subscription: sub })).await;
        let following = pump(tail, sub, self.out.clone());
        let task = match &self.grant {
            Grant::Owner => tokio::spawn(following),
            Grant::Link(link) => {
                // A link's subscription ends the moment its grant does, with
                // a notice saying why (then nothing more on it).
                let (link, engine, out) = (link.clone(), self.engine.clone(), self.out.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = following => {}
                        error = link.lost(&engine) => {
                            tracing::info!(link = %link.id, "closing a link's subscription: access lost");
                            let note = serde_json::json!({
                                "jsonrpc": "2.0",
                                "method": SUBSCRIPTION_CLOSED,
                                "params": SubscriptionClosed { subscription: sub, error },
                            });
                            let _ = out.send(format!("{note}\n")).await;
                        }
                    }
                })
            }
        };
        self.subs.insert(sub, task);
        Ok(())
    }

    /// The door's links; only the owner may manage them.
    fn owner_links(&self) -> Result<&crate::access::Links, RpcError> {
        if !matches!(self.grant, Grant::Owner) {
            return Err(RpcError::forbidden("only the owner can manage links"));
        }
        self.gate.as_ref().map(Gate::links).ok_or_else(|| {
            RpcError::invalid_request("links need the app-server (this is an in-process session without one)")
        })
    }

    fn link_create(&self, p: LinkCreateParams) -> Result<LinkCreateResult, RpcError> {
        let links = self.owner_links()?;
        let thread = self.engine.thread_read(ThreadReadParams { thread_id: p.thread_id.clone() })?;
        let Some(base) = &self.http_url else {
            return Err(RpcError::invalid_request(
                "the app-server has no http listener for links to point at; restart it with one: tandem app-server restart --listen http://127.0.0.1:7878",
            )
            .with_reason("noHttpListener"));
        };
        let scope = p.scope.unwrap_or(LinkScope::Read);
        let (link, token) = links.create(&thread.id, scope, p.expires_in).map_err(|e| {
            tracing::error!(error = %e, "could not create a link");
            RpcError::internal(format!("could not create the link: {e}"))
        })?;
        let url = format!("{base}/t/{}#k={token}", thread.id);
        Ok(LinkCreateResult { link, token, url })
    }

    fn link_list(&self, p: LinkListParams) -> Result<LinkListResult, RpcError> {
        let links = self.owner_links()?;
        let thread = match &p.thread_id {
            Some(t) => Some(tandem_protocol::ids::normalize_uuid("threadId", t).map_err(RpcError::invalid_params)?),
            None => None,
        };
        Ok(LinkListResult { data: links.list(thread.as_deref()) })
    }

    fn link_revoke(&self, p: LinkRevokeParams) -> Result<LinkRevokeResult, RpcError> {
        let links = self.owner_links()?;
        let revoked = match (&p.link_id, &p.thread_id) {
            (Some(id), None) => {
                let revoked = links.revoke(id).map_err(|e| RpcError::internal(e.to_string()))?;
                if revoked.is_empty() {
                    if let Some(at) = links.revoked_at(id) {
                        return Err(RpcError::invalid_params(format!(
                            "link {id} was already revoked at {at}; nothing to do"
                        ))
                        .with_reason("linkRevoked")
                        .with("revokedAt", at));
                    }
                    return Err(RpcError::invalid_params(format!("no link {id}; `tandem share links` lists them"))
                        .with_reason("linkNotFound"));
                }
                revoked
            }
            (None, Some(thread)) => {
                let thread =
                    tandem_protocol::ids::normalize_uuid("threadId", thread).map_err(RpcError::invalid_params)?;
                links.revoke_thread(&thread).map_err(|e| RpcError::internal(e.to_string()))?
            }
            _ => return Err(RpcError::invalid_params("invalid params for link/revoke: give linkId or threadId (one)")),
        };
        Ok(LinkRevokeResult { revoked })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (_, task) in self.subs.drain() {
            task.abort();
        }
    }
}

fn reply<T: Serialize>(id: &Id, result: Result<T, RpcError>) -> String {
    match result {
        Ok(r) => response_line(id, &r),
        Err(e) => error_line(id, &e),
    }
}

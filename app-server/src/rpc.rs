//! One connection's session: who the client said it is, which subscriptions it
//! owns, and the dispatch of each request to the engine. It sees parsed lines,
//! never bytes, and answers by queueing lines on the connection's outbound queue.

use std::collections::HashMap;

use serde::Serialize;
use tandem_protocol::message::{Id, Incoming, error_line, parse_line, response_line};
use tandem_protocol::methods::*;
use tandem_protocol::{ClientInfo, PROTOCOL_VERSION, RpcError};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::hub_sync::HubSync;
use crate::subscribe::follow;
use crate::transport::Outbound;

/// Most subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// Per-connection state.
pub struct Session {
    engine: Engine,
    client: ClientInfo,
    subs: HashMap<u64, JoinHandle<()>>,
    next_sub: u64,
    out: Outbound,
    hub: Option<HubSync>,
}

impl Session {
    pub fn new(engine: Engine, out: Outbound) -> Self {
        Session { engine, client: ClientInfo::anonymous(), subs: HashMap::new(), next_sub: 1, out, hub: None }
    }

    /// Serves `hub/*` through these hub links (without: those methods say so).
    pub fn with_hub(mut self, hub: Option<HubSync>) -> Self {
        self.hub = hub;
        self
    }

    fn hub(&self) -> Result<&HubSync, RpcError> {
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
                            launch_args: crate::server::launch_args().to_vec(),
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
        };
        tracing::trace!(method, "answered");
        self.send(line).await;
    }

    /// Answers the subscribe request itself, before the first notification.
    async fn subscribe(&mut self, id: &Id, p: ThreadSubscribeParams) -> Result<(), RpcError> {
        let handle = self.engine.thread(&p.thread_id)?;
        self.subs.retain(|_, task| !task.is_finished());
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(RpcError::invalid_params(format!(
                "this connection already has {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe some first"
            )));
        }
        // Follow before deciding where to start, so that the feed keeps what
        // is committed from here on (anything older is in the store).
        let follower = handle.follow();
        let live_from = handle.lock().last_seq + 1;
        let from = self.engine.resolve_from(&handle, p.from, live_from).await?;
        let sub = self.next_sub;
        self.next_sub += 1;
        self.send(response_line(id, &ThreadSubscribeResult { subscription: sub })).await;
        let task = tokio::spawn(follow(
            std::sync::Arc::clone(self.engine.store()),
            handle,
            follower,
            from,
            sub,
            self.out.clone(),
        ));
        self.subs.insert(sub, task);
        Ok(())
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

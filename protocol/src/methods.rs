//! The method table, declared once. Each entry yields a marker type implementing
//! [`Method`] (what typed clients call) and a variant of [`Request`] (what the
//! server matches on, exhaustively), so a method cannot be added to one side only.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::RpcError;
use crate::event::RawEvent;
use crate::hub::{HubLinkParams, HubLinkResult, HubLinksParams, HubLinksResult, HubUnlinkParams, HubUnlinkResult};
use crate::position::Position;
use crate::types::{AgentInfo, ClientInfo, ImportedTurn, Thread, Turn};

/// A JSON-RPC method: its wire name and its typed params and result.
pub trait Method {
    const NAME: &'static str;
    type Params: Serialize + DeserializeOwned + Send + 'static;
    type Result: Serialize + DeserializeOwned + Send + 'static;
}

macro_rules! methods {
    ($( $(#[$doc:meta])* $ty:ident = $name:literal ($params:ty) -> $result:ty; )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;
            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*

        /// Every method name, in table order.
        pub const METHOD_NAMES: &[&str] = &[$($name),*];

        /// A parsed request: one variant per method, carrying its typed params.
        #[derive(Debug, Clone)]
        pub enum Request {
            $( $ty($params), )*
        }

        impl Request {
            /// Parses `params` for `method`. Absent params mean `{}`; positional
            /// params are refused, since every method takes named ones.
            pub fn parse(method: &str, params: Option<Value>) -> Result<Request, RpcError> {
                match method {
                    $( $name => Ok(Request::$ty(parse_params::<$params>($name, params)?)), )*
                    other => Err(RpcError::method_not_found(other, METHOD_NAMES)),
                }
            }

            /// The wire name of this request's method.
            pub fn method(&self) -> &'static str {
                match self {
                    $( Request::$ty(_) => $name, )*
                }
            }
        }
    };
}

fn parse_params<P: DeserializeOwned>(method: &str, params: Option<Value>) -> Result<P, RpcError> {
    let params = match params {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(obj @ Value::Object(_)) => obj,
        Some(_) => {
            return Err(RpcError::invalid_params(format!(
                "invalid params for {method}: params must be an object with named fields"
            )));
        }
    };
    serde_json::from_value(params).map_err(|e| RpcError::invalid_params(format!("invalid params for {method}: {e}")))
}

methods! {
    /// Says who the connection is; answers with the server's version.
    Initialize = "initialize" (InitializeParams) -> InitializeResult;
    /// Creates a thread (optionally with a chosen id and imported turns).
    ThreadStart = "thread/start" (ThreadStartParams) -> ThreadResult;
    /// Imports earlier turns into an idle thread without running the agent.
    ThreadAppend = "thread/append" (ThreadAppendParams) -> ThreadResult;
    /// Lists threads, newest first.
    ThreadList = "thread/list" (ThreadListParams) -> ThreadListResult;
    /// Reads one thread's current state.
    ThreadRead = "thread/read" (ThreadReadParams) -> ThreadResult;
    /// Changes a thread's title or shared flag.
    ThreadUpdate = "thread/update" (ThreadUpdateParams) -> ThreadResult;
    /// Reads a page of a thread's events.
    ThreadEvents = "thread/events" (ThreadEventsParams) -> ThreadEventsResult;
    /// Follows a thread: history from `from`, then live, as `thread/event` notifications.
    ThreadSubscribe = "thread/subscribe" (ThreadSubscribeParams) -> ThreadSubscribeResult;
    /// Ends a subscription of this connection.
    ThreadUnsubscribe = "thread/unsubscribe" (ThreadUnsubscribeParams) -> ThreadUnsubscribeResult;
    /// Starts a turn, or fails `busy` if one is running.
    TurnStart = "turn/start" (TurnStartParams) -> TurnResult;
    /// Interrupts the running turn.
    TurnInterrupt = "turn/interrupt" (TurnInterruptParams) -> TurnInterruptResult;
    /// Shares a thread through a hub (DESIGN §7): creates the share, then syncs it.
    HubLinkCreate = "hub/link" (HubLinkParams) -> HubLinkResult;
    /// Lists the hub links, with how far each has synced.
    HubLinkList = "hub/links" (HubLinksParams) -> HubLinksResult;
    /// Stops syncing a thread to its hub, optionally deleting the share there.
    HubUnlink = "hub/unlink" (HubUnlinkParams) -> HubUnlinkResult;
    /// Owner only: creates a link (a per-thread token) and its URL.
    LinkCreate = "link/create" (LinkCreateParams) -> LinkCreateResult;
    /// Owner only: lists links, of one thread or all.
    LinkList = "link/list" (LinkListParams) -> LinkListResult;
    /// Owner only: ends a link, or every link of a thread, at once.
    LinkRevoke = "link/revoke" (LinkRevokeParams) -> LinkRevokeResult;
    /// What this connection's token may do (owner, or which link).
    AccessRead = "access/read" (AccessReadParams) -> AccessReadResult;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitializeParams {
    pub client_info: ClientInfo,
}

/// The server's name and version, plus what `tandem app-server status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// The flags the server was started with (after `tandem app-server`), so
    /// that `status` can show them and `restart` can keep them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_args: Vec<String>,
    /// Every transport the server listens on (`unix:PATH`, `stdio`,
    /// `http://HOST:PORT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub server_info: ServerInfo,
    pub protocol_version: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadStartParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<ImportedTurn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadAppendParams {
    pub thread_id: String,
    pub turns: Vec<ImportedTurn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadResult {
    pub thread: Thread,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListResult {
    pub data: Vec<Thread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadReadParams {
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadUpdateParams {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadEventsParams {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadEventsResult {
    pub events: Vec<RawEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

impl Clone for ThreadEventsResult {
    fn clone(&self) -> Self {
        ThreadEventsResult { events: self.events.iter().map(|e| e.to_owned()).collect(), next: self.next }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThreadSubscribeParams {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Position>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadSubscribeResult {
    pub subscription: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadUnsubscribeParams {
    pub subscription: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadUnsubscribeResult {
    pub unsubscribed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TurnStartParams {
    pub thread_id: String,
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnResult {
    pub turn: Turn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TurnInterruptParams {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnInterruptResult {
    pub interrupted: bool,
}

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LinkScope {
    /// View and follow the thread.
    Read,
    /// Also post turns, interrupt them, and change the thread's title and
    /// shared flag.
    Write,
}

impl LinkScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkScope::Read => "read",
            LinkScope::Write => "write",
        }
    }
}

/// A link as `link/list` shows it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub id: String,
    pub thread_id: String,
    pub scope: LinkScope,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// Past `expiresAt`: refused, listed until revoked.
    #[serde(default)]
    pub expired: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkCreateParams {
    pub thread_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<LinkScope>,
    /// Seconds from now until the link stops working; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkCreateResult {
    pub link: Link,
    /// The secret: shown once, kept by the server only as a hash.
    pub token: String,
    /// `http://HOST:PORT/t/<threadId>#k=<token>` on the server's http listener.
    pub url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkListResult {
    pub data: Vec<Link>,
}

/// `linkId` ends one link, `threadId` every link of a thread (give one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkRevokeParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRevokeResult {
    /// The ids of the links ended.
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessReadParams {}

/// `owner`: everything; else the link's thread and scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessReadResult {
    pub owner: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

/// The params of a `subscription/closed` notification: the server ended a
/// subscription (its link lost access) and sends nothing more on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionClosed {
    pub subscription: u64,
    pub error: RpcError,
}

/// The notification that ends a subscription from the server's side.
pub const SUBSCRIPTION_CLOSED: &str = "subscription/closed";

/// The params of a `thread/event` notification.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventNotification {
    pub subscription: u64,
    pub result: RawEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_named_params_and_reports_what_is_wrong() {
        let r = Request::parse("turn/start", Some(json!({"threadId":"t","input":"hi"}))).unwrap();
        assert_eq!(r.method(), "turn/start");
        let e = Request::parse("turn/start", Some(json!({"threadId":"t"}))).unwrap_err();
        assert_eq!(e.code, -32602);
        assert!(e.message.contains("input"), "{}", e.message);
        let e = Request::parse("turn/start", Some(json!(["t", "hi"]))).unwrap_err();
        assert!(e.message.contains("named"), "{}", e.message);
        let e = Request::parse("thread/events", Some(json!({"threadId":"t","from":"never"}))).unwrap_err();
        assert!(e.message.contains("RFC 3339"), "{}", e.message);
        let e = Request::parse("thread/nope", None).unwrap_err();
        assert_eq!(e.code, -32601);
        assert!(Request::parse("thread/list", None).is_ok());
    }
}

//! `tandem hub`: a share server. It keeps copies of shared threads, synced by
//! app-servers through a small JSON API (DESIGN §7), for readers on other
//! machines while the author's laptop is off.

pub mod api;
pub mod client_ip;
pub mod live;
pub mod page;
pub mod reader;
pub mod replicas;
pub mod secret;
pub mod server;
pub mod store;

pub use api::Limits;
pub use client_ip::{BadCidr, Cidr, TrustedProxies};
pub use server::{Database, HubError, HubOptions, run};

//! The hook through which the node asks an app source about a key or id it does not know.
//!
//! The registry ([`crate::AppRegistry`]) is the node's whole view of the apps: every lookup on
//! the connect and REST paths reads it and nothing else. A source that keeps its apps elsewhere
//! (a database) pushes changes into it through `Node::apply_apps`; but an app created a moment
//! ago may not have been pushed yet when its first client arrives, so on a miss the node asks
//! the source once ([`AppSource::on_miss`]) before refusing. The broker knows nothing of how a
//! source stores its apps.

use async_trait::async_trait;

/// What a client named that the registry did not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppLookup<'a> {
    /// A REST call's `/apps/{id}`.
    Id(&'a str),
    /// A WebSocket's `/app/{key}`.
    Key(&'a str),
}

/// A source of apps the node consults when the registry has no app for a key or id.
#[async_trait]
pub trait AppSource: Send + Sync {
    /// Look the app up in the source; when it exists, apply it (through `Node::apply_apps`, as
    /// every change of the source is) before returning, so the node finds it in its registry
    /// afterwards. Any client can name any key, so an implementation must bound what misses
    /// cost the source (rate, concurrency, negative cache) and never fail loudly: a failed
    /// lookup means the app stays unknown.
    async fn on_miss(&self, lookup: AppLookup<'_>);
}

//! [`NodeRegistration`] in process.

use async_trait::async_trait;

use crate::cluster::{NodeRegistration, NodeSnapshot, ResyncOutcome};
use crate::error::BackplaneError;

use super::MemoryClusterState;

#[async_trait]
impl NodeRegistration for MemoryClusterState {
    /// In-process state is never lost, so there is nothing to re-register.
    async fn resync(&self, _snapshot: &NodeSnapshot) -> Result<ResyncOutcome, BackplaneError> {
        Ok(ResyncOutcome::default())
    }
}

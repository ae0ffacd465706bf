//! What a stream worker needs from its place in a consumer group, whichever implements it: the
//! Redis consumer ([`GroupConsumer`](super::consumer::GroupConsumer)) in production, the
//! simulated stream (`sim/stream.rs`) in the simulator. The workers' loops
//! ([`super::next_batch`], the plan and result workers) are written against this trait only, so
//! the simulator runs the same loop code as the service.

use super::consumer::{Entry, GroupConsumer, Reclaimed};
use crate::store::StoreError;

/// One consumer of one stream in one group.
pub trait GroupStream {
    /// The stream's key (for alerts).
    fn stream(&self) -> &str;
    /// The group's name.
    fn group(&self) -> &str;
    /// New entries for this consumer, at most `count`, waiting up to `block_ms` for one.
    fn read(&mut self, count: usize, block_ms: usize) -> Result<Vec<Entry>, StoreError>;
    /// Entries of any consumer idle for at least `min_idle_ms`, taken over if a look is due;
    /// those delivered more than `max_deliveries` times come back as poisoned.
    fn reclaim_if_due(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError>;
    /// Entries of consumers known to be dead, taken over if a look is due.
    fn take_over_if_due(
        &mut self,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError>;
    /// Acknowledges `ids`: they leave this consumer's pending list.
    fn ack(&mut self, ids: &[String]) -> Result<(), StoreError>;
}

/// The service's consumer, on Redis: each method is its own method of the same name.
impl GroupStream for GroupConsumer {
    fn stream(&self) -> &str {
        &self.stream
    }
    fn group(&self) -> &str {
        &self.group
    }
    fn read(&mut self, count: usize, block_ms: usize) -> Result<Vec<Entry>, StoreError> {
        GroupConsumer::read(self, count, block_ms)
    }
    fn reclaim_if_due(
        &mut self,
        min_idle_ms: u64,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        GroupConsumer::reclaim_if_due(self, min_idle_ms, max_deliveries, count)
    }
    fn take_over_if_due(
        &mut self,
        max_deliveries: usize,
        count: usize,
    ) -> Result<Reclaimed, StoreError> {
        GroupConsumer::take_over_if_due(self, max_deliveries, count)
    }
    fn ack(&mut self, ids: &[String]) -> Result<(), StoreError> {
        GroupConsumer::ack(self, ids)
    }
}

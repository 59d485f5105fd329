//! The read APIs: `GET /events` ([`query`] checks its parameters, [`events`] reads the pages)
//! and the suppressions API ([`suppressions`]), with the signed cursors both hand out
//! ([`cursor`]).

pub mod cursor;
pub mod events;
pub mod query;
pub mod suppressions;

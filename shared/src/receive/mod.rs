//! A provider's request becomes events: the body parsed into a JSON tree ([`json`]), checked
//! and normalized by the provider's module ([`providers`]) into the one event type
//! ([`event`]).

pub mod event;
pub mod json;
pub mod providers;

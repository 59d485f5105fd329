//! mailhooks: verify email providers' webhooks, normalize them into one event vocabulary,
//! and store each event exactly once in DynamoDB.
//!
//! The modules follow the data: [`receive`] turns a provider's bytes and headers into
//! events, [`store`] writes them (and the suppressions they call for) exactly once, [`read`]
//! answers the read APIs from the table, and [`http`] is the Lambda face of all three.
//! [`auth`] and [`config`] serve them all; dependencies point from the top of this list down.
//! [`startup`] is where each function's `main` gets what it serves requests with.

pub mod auth;
pub mod aws_error;
pub mod config;
#[cfg(feature = "engagelab-api")]
pub mod engagelab_api;
#[cfg(feature = "publisher")]
pub mod fan_out;
pub mod http;
pub mod http_event;
pub mod metrics;
pub mod read;
pub mod receive;
pub mod startup;
pub mod store;

//! mailhooks: verify email providers' webhooks, normalize them into one event vocabulary,
//! and store each event exactly once in DynamoDB.

pub mod auth;
pub mod cursor;
pub mod event;
pub mod providers;
pub mod http;
pub mod query;
pub mod raw_codec;
pub mod raw_object;
pub mod reader;
pub mod store;
pub mod suppression;

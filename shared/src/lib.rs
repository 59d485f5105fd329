//! mailhooks: verify email providers' webhooks, normalize them into one event vocabulary,
//! and store each event exactly once in DynamoDB.

pub mod auth;
pub mod cursor;
pub mod event;
pub mod json;
pub mod providers;
pub mod http;
pub mod query;
pub mod reader;
pub mod store;

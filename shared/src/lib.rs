//! mailhooks: verify email providers' webhooks, normalize them into one event vocabulary,
//! and store each event exactly once in DynamoDB.

pub mod auth;
pub mod aws_error;
pub mod config;
pub mod cursor;
#[cfg(feature = "engagelab-api")]
pub mod engagelab_api;
#[cfg(feature = "engagelab-cli")]
pub mod engagelab_cli;
#[cfg(feature = "engagelab-api")]
pub mod engagelab_registration;
pub mod event;
#[cfg(feature = "publisher")]
pub mod fan_out;
pub mod json;
pub mod metrics;
pub mod providers;
pub mod http;
#[cfg(feature = "engagelab-api")]
pub mod https_client;
pub mod query;
pub mod raw_codec;
pub mod raw_object;
pub mod reader;
pub mod store;
pub mod suppression;

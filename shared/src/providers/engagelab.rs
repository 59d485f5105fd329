//! Placeholder until the provider's normalization lands.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Env, Provider};
use crate::auth::{Authenticator, ConfigError};
use crate::event::{event_id, Event, EventIdentity, EventType};

pub const PROVIDER: Provider = Provider { name: "engagelab", authenticator, normalize };

fn authenticator(_env: Env<'_>) -> Result<Authenticator, ConfigError> {
    Ok(Authenticator::new())
}

fn normalize(object: &Map<String, Value>, raw: &str, received_at: DateTime<Utc>) -> Vec<Event> {
    let mut event = Event::new(PROVIDER.name, EventType::Unknown, received_at, received_at, raw);
    event.event_id = event_id(PROVIDER.name, EventIdentity::Payload(object), None);
    vec![event]
}

//! One short line for an AWS SDK failure: what an error log says of its cause.
//!
//! The SDK's full error text carries the raw response with every header (about 2 KB); an
//! operator needs the service's error code, or which way the call failed, and nothing more.

use std::error::Error;
use std::fmt::Debug;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Longest cause kept; a service message is cut after it.
const MAX_CAUSE_CHARS: usize = 160;

pub fn short_cause<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
    R: Debug + 'static,
{
    let cause = match error {
        SdkError::ServiceError(_) => match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => "the service refused the request".to_owned(),
        },
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => format!("could not reach the service: {}", innermost(error)),
        SdkError::ResponseError(_) => "the service's response could not be read".to_owned(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
        _ => innermost(error),
    };
    match cause.char_indices().nth(MAX_CAUSE_CHARS) {
        Some((end, _)) => format!("{}…", &cause[..end]),
        None => cause,
    }
}

/// The last error of the source chain, which names what went wrong (a refused connection, ...).
fn innermost(error: &(dyn Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

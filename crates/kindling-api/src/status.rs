//! Every error of the APIs becomes a gRPC status or an HTTP status here, and only here.
//!
//! matchbox answers most failures with `UNKNOWN` and the operating system's text, which
//! names its files (`open /var/lib/matchbox/groups/x.json: no such file or directory`).
//! Kindling answers with the code that says what happened and words that name the object,
//! never a path: `NOT_FOUND` for a missing object, `INVALID_ARGUMENT` for an id or body it
//! refuses, `INTERNAL` for a storage failure (the details go to the server's log).

use kindling_model::store::ObjectError;
use tonic::{Code, Status};

use crate::convert::Refused;

/// matchbox's words for a Select that matches nothing.
pub const NO_MATCHING_GROUP: &str = "matchbox: No matching Group";
pub const NO_MATCHING_PROFILE: &str = "matchbox: No matching Profile";

/// What went wrong in one call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0}")]
    NoMatch(&'static str),
    #[error("the request carries no {0}")]
    Missing(&'static str),
    #[error("the server is shutting down or overloaded")]
    Unavailable,
    /// A stored object that no longer loads (edited by hand): the request was fine.
    #[error("the stored {what} {id:?} does not load: {reason}")]
    Unloadable {
        what: &'static str,
        id: String,
        reason: String,
    },
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = match &e {
            ApiError::Object(ObjectError::NotFound { .. }) | ApiError::NoMatch(_) => Code::NotFound,
            ApiError::Object(
                ObjectError::BadId { .. }
                | ObjectError::Invalid { .. }
                | ObjectError::TooLarge { .. },
            )
            | ApiError::Refused(_)
            | ApiError::Missing(_) => Code::InvalidArgument,
            ApiError::Object(ObjectError::Changed { .. }) => Code::FailedPrecondition,
            ApiError::Object(ObjectError::Io { .. }) => Code::Internal,
            ApiError::Unavailable => Code::Unavailable,
            ApiError::Unloadable { .. } => Code::FailedPrecondition,
        };
        if code == Code::Internal {
            tracing::error!(target: "kindling::rpc", error = %e, "storage failure");
        }
        Status::new(code, e.to_string())
    }
}

/// The same errors as HTTP statuses (the REST objects API): 404 missing, 400 refused,
/// 413 too large, 412 not as expected, 500 storage, 503 shutting down.
pub fn http_status(e: &ApiError) -> hyper::StatusCode {
    use hyper::StatusCode as S;
    match e {
        ApiError::Object(ObjectError::NotFound { .. }) | ApiError::NoMatch(_) => S::NOT_FOUND,
        ApiError::Object(ObjectError::TooLarge { .. }) => S::PAYLOAD_TOO_LARGE,
        ApiError::Object(ObjectError::Changed { .. }) => S::PRECONDITION_FAILED,
        ApiError::Object(ObjectError::BadId { .. } | ObjectError::Invalid { .. })
        | ApiError::Refused(_)
        | ApiError::Missing(_) => S::BAD_REQUEST,
        ApiError::Object(ObjectError::Io { .. }) => {
            tracing::error!(target: "kindling::api", error = %e, "storage failure");
            S::INTERNAL_SERVER_ERROR
        }
        ApiError::Unavailable => S::SERVICE_UNAVAILABLE,
        ApiError::Unloadable { .. } => S::CONFLICT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_what_happened() {
        let nf: Status = ApiError::Object(ObjectError::NotFound {
            what: "group",
            id: "x".into(),
        })
        .into();
        assert_eq!(nf.code(), Code::NotFound);
        assert_eq!(nf.message(), "group \"x\" not found");
        let bad: Status = ApiError::Object(ObjectError::BadId {
            what: "Ignition config",
            id: "../profiles/x.json".into(),
            why: "it contains '/'",
        })
        .into();
        assert_eq!(bad.code(), Code::InvalidArgument);
        let none: Status = ApiError::NoMatch(NO_MATCHING_GROUP).into();
        assert_eq!(
            (none.code(), none.message()),
            (Code::NotFound, NO_MATCHING_GROUP)
        );
        let io: Status = ApiError::Object(ObjectError::Io {
            what: "group",
            id: "x".into(),
            source: std::io::Error::from_raw_os_error(28),
        })
        .into();
        assert_eq!(io.code(), Code::Internal);
        assert!(!io.message().contains('/'), "{}", io.message());
    }
}

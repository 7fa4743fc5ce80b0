//! isp-kit's errors: a gRPC status code, and in the status's one detail
//! (`isp.Message` with JSON in `BytesBody`) the error code, message and
//! details that the gateway shows to the end user.
//!
//! Go: `isp-kit/grpc/apierrors`.

use std::fmt;

use bytes::Bytes;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::message::{Message, RpcStatus, MESSAGE_TYPE_URL};

/// The error code of [`Error::internal`] (Go: `apierrors.ErrCodeInternal`).
pub const ERROR_CODE_INTERNAL: i64 = 900;
/// The message of [`Error::internal`], the only text a peer gets for it.
pub const INTERNAL_SERVICE_ERROR: &str = "internal service error";

/// A gRPC status code. [`name`](Self::name) is Go's spelling (`codes.Code`'s
/// `String()`), which the `rpc` example prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 0
    Ok,
    /// 1 (Go spells it `Canceled`)
    Cancelled,
    /// 2
    Unknown,
    /// 3: isp-kit's business errors.
    InvalidArgument,
    /// 4
    DeadlineExceeded,
    /// 5
    NotFound,
    /// 6
    AlreadyExists,
    /// 7
    PermissionDenied,
    /// 8
    ResourceExhausted,
    /// 9
    FailedPrecondition,
    /// 10
    Aborted,
    /// 11
    OutOfRange,
    /// 12
    Unimplemented,
    /// 13: isp-kit's internal errors.
    Internal,
    /// 14
    Unavailable,
    /// 15
    DataLoss,
    /// 16
    Unauthenticated,
}

impl Code {
    const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code's number on the wire (`grpc-status`).
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code of a number; an unknown number is `Unknown`, as in Go.
    pub fn from_i32(code: i32) -> Self {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(Self::Unknown)
    }

    /// Go's name of the code (`codes.Code.String()`): `OK`, `Canceled`,
    /// `InvalidArgument`, … Also the `code` label of the RPC metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "Canceled",
            Self::Unknown => "Unknown",
            Self::InvalidArgument => "InvalidArgument",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::NotFound => "NotFound",
            Self::AlreadyExists => "AlreadyExists",
            Self::PermissionDenied => "PermissionDenied",
            Self::ResourceExhausted => "ResourceExhausted",
            Self::FailedPrecondition => "FailedPrecondition",
            Self::Aborted => "Aborted",
            Self::OutOfRange => "OutOfRange",
            Self::Unimplemented => "Unimplemented",
            Self::Internal => "Internal",
            Self::Unavailable => "Unavailable",
            Self::DataLoss => "DataLoss",
            Self::Unauthenticated => "Unauthenticated",
        }
    }

    pub(crate) fn to_tonic(self) -> tonic::Code {
        tonic::Code::from_i32(self.as_i32())
    }

    pub(crate) fn from_tonic(code: tonic::Code) -> Self {
        Self::from_i32(code as i32)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The JSON in an isp error's detail (Go: `apierrors.Error`'s exported
/// fields). Written in lowerCamelCase, as isp-kit's JSON writes it; read in
/// Go's PascalCase too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// The application's error code (a business error's, or 900).
    #[serde(alias = "ErrorCode", default)]
    pub error_code: i64,
    /// The message the end user sees.
    #[serde(alias = "ErrorMessage", default)]
    pub error_message: String,
    /// Structured details; left out when empty.
    #[serde(
        alias = "Details",
        default,
        skip_serializing_if = "serde_json::Map::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub details: serde_json::Map<String, serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    Ok(Option::deserialize(de)?.unwrap_or_default())
}

impl ErrorDetail {
    /// The isp error in a status's `grpc-status-details-bin` (an encoded
    /// `google.rpc.Status`): the first `isp.Message` detail whose JSON has a
    /// non-zero error code, as Go's `apierrors.FromError` reads it.
    pub(crate) fn from_status_details(details: &[u8]) -> Option<Self> {
        if details.is_empty() {
            return None;
        }
        let status = RpcStatus::decode(details).ok()?;
        let any = status
            .details
            .into_iter()
            .find(|any| any.type_url == MESSAGE_TYPE_URL)?;
        let message = Message::decode(&any.value[..]).ok()?;
        let detail: ErrorDetail = serde_json::from_slice(&message.into_json()).ok()?;
        (detail.error_code != 0).then_some(detail)
    }
}

/// What a cause of an error is kept as (never sent).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A handler's error, as isp-kit's `apierrors.Error`: a gRPC code, the
/// [`ErrorDetail`] the peer sees, and a cause that stays in this process
/// (logged with the request id, never sent).
///
/// Any `std::error::Error` converts into an [internal](Self::internal)
/// error, so `?` works in a handler; a peer then sees `Internal`, 900,
/// `internal service error`. (This is why `Error` itself does not
/// implement `std::error::Error`, as `anyhow::Error` does not.)
pub struct Error {
    code: Code,
    /// The status message: the detail's message, or a plain status text.
    message: String,
    detail: Option<ErrorDetail>,
    cause: Option<BoxError>,
}

impl Error {
    /// A business error: `InvalidArgument`, `error_code`, `message` (Go:
    /// `apierrors.NewBusinessError`). Logged at WARN by the server.
    pub fn business(error_code: i64, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, error_code, message)
    }

    /// An internal error: `Internal`, 900, `internal service error` (Go:
    /// `apierrors.NewInternalServiceError`). `cause` is logged by the server
    /// with the request id, and never sent.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::new(Code::Internal, ERROR_CODE_INTERNAL, INTERNAL_SERVICE_ERROR).with_cause(cause)
    }

    /// An isp error with any code (Go: `apierrors.New`).
    pub fn new(code: Code, error_code: i64, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code,
            detail: Some(ErrorDetail {
                error_code,
                error_message: message.clone(),
                details: serde_json::Map::new(),
            }),
            message,
            cause: None,
        }
    }

    /// A plain gRPC status with no isp detail (Go: `status.Error(code,
    /// message)`), e.g. the server's own `NotFound` for an unknown endpoint.
    pub fn status(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            cause: None,
        }
    }

    /// Sets the details the peer sees (Go: `WithDetails`). Never put a
    /// secret or a stack there: the gateway shows them to the end user.
    pub fn with_details(mut self, details: serde_json::Map<String, serde_json::Value>) -> Self {
        if let Some(detail) = &mut self.detail {
            detail.details = details;
        }
        self
    }

    /// Keeps `cause` for the server's log line (never sent).
    pub fn with_cause(mut self, cause: impl Into<BoxError>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The status message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The isp detail, if any.
    pub fn detail(&self) -> Option<&ErrorDetail> {
        self.detail.as_ref()
    }

    /// The cause kept for the log.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// The status sent: code, message and, for an isp error, the
    /// `isp.Message` detail in `grpc-status-details-bin`.
    pub(crate) fn to_status(&self) -> tonic::Status {
        let Some(detail) = &self.detail else {
            return tonic::Status::new(self.code.to_tonic(), self.message.clone());
        };
        let json = match serde_json::to_vec(detail) {
            Ok(json) => json,
            // A map of JSON values always serializes; keep the status anyway.
            Err(_) => return tonic::Status::new(self.code.to_tonic(), self.message.clone()),
        };
        let status = RpcStatus {
            code: self.code.as_i32(),
            message: self.message.clone(),
            details: vec![prost_types::Any {
                type_url: MESSAGE_TYPE_URL.to_owned(),
                value: Message::json(json).encode_to_vec(),
            }],
        };
        tonic::Status::with_details(
            self.code.to_tonic(),
            self.message.clone(),
            Bytes::from(status.encode_to_vec()),
        )
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    /// Any other error is an internal one (the cause stays in the process).
    fn from(e: E) -> Self {
        Self::internal(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("detail", &self.detail)
            .field("cause", &self.cause.as_ref().map(|c| c.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    /// Code, message and error code; the cause after `: ` (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (error code {})", detail.error_code)?;
        }
        if let Some(cause) = &self.cause {
            write!(f, ": {}", crate::ErrorChain(&**cause))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_with_gos_names() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(Code::from_i32(i as i32), *code);
            assert_eq!(Code::from_tonic(code.to_tonic()), *code);
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(Code::Cancelled.name(), "Canceled");
        assert_eq!(Code::InvalidArgument.to_string(), "InvalidArgument");
    }

    #[test]
    fn a_business_error_carries_the_isp_detail() {
        let mut details = serde_json::Map::new();
        details.insert("field".into(), "x".into());
        let status = Error::business(400, "bad input")
            .with_details(details)
            .to_status();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "bad input");
        let detail = ErrorDetail::from_status_details(status.details()).unwrap();
        assert_eq!(detail.error_code, 400);
        assert_eq!(detail.error_message, "bad input");
        assert_eq!(detail.details["field"], "x");
        // lowerCamelCase on the wire, details left out when empty
        let json = serde_json::to_value(ErrorDetail {
            error_code: 1,
            error_message: "m".into(),
            details: Default::default(),
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"errorCode":1,"errorMessage":"m"}));
    }

    #[test]
    fn an_internal_error_sends_no_cause() {
        let error: Error = std::io::Error::other("db password=hunter2 refused").into();
        let status = error.to_status();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), INTERNAL_SERVICE_ERROR);
        let detail = ErrorDetail::from_status_details(status.details()).unwrap();
        assert_eq!(detail.error_code, 900);
        assert!(!format!("{status:?}").contains("hunter2"));
        assert!(error.to_string().contains("hunter2"), "kept for the log");
    }

    #[test]
    fn go_field_names_and_a_zero_code_are_read_as_go_does() {
        let go = |json: &str| {
            let status = RpcStatus {
                code: 3,
                message: String::new(),
                details: vec![prost_types::Any {
                    type_url: MESSAGE_TYPE_URL.to_owned(),
                    value: Message::json(json.to_owned()).encode_to_vec(),
                }],
            };
            ErrorDetail::from_status_details(&status.encode_to_vec())
        };
        let detail = go(r#"{"ErrorCode":7,"ErrorMessage":"m","Details":null}"#).unwrap();
        assert_eq!((detail.error_code, detail.error_message.as_str()), (7, "m"));
        assert_eq!(go(r#"{"errorCode":0,"errorMessage":"m"}"#), None);
        assert_eq!(go("not json"), None);
        assert_eq!(ErrorDetail::from_status_details(b"\xff\xff"), None);
    }
}

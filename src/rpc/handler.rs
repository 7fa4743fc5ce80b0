//! Handlers: plain async functions whose arguments say what they take
//! from the request (extractors) and whose `Result` says what they answer,
//! and actix actors through a `Recipient<Call<T, R>>`.
//!
//! Go: `isp-kit/grpc/endpoint` (`Wrapper.Endpoint`, the JSON body
//! extractor and mapper, `grpc.AuthData` and the context values as
//! parameters).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::Error;
use super::metadata::{Forward, Identity, Metadata, RequestId, TraceContext};

/// The error code of a request body that is empty or not the JSON the
/// endpoint takes (a business error, `InvalidArgument`).
pub const ERROR_CODE_BAD_REQUEST: i64 = 400;

/// A boxed handler future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A handler with its argument types erased: JSON in, JSON out.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(Request) -> BoxFuture<Result<Bytes, Error>> + Send + Sync>;

/// One request as the router hands it to a handler: the endpoint, the
/// metadata and the JSON body.
pub struct Request {
    pub(crate) endpoint: Arc<str>,
    pub(crate) request_id: RequestId,
    pub(crate) metadata: Metadata,
    pub(crate) body: Bytes,
}

impl Request {
    /// The endpoint (the router's own name for it).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The request id (received, or made here when the call had none).
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// The metadata as received.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The body: JSON, or empty.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Debug for Request {
    /// The endpoint, request id and body size; never the body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("endpoint", &self.endpoint)
            .field("request_id", &self.request_id)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a handler argument is taken from the request as. An `Err` answers
/// the call with that error, without running the handler.
pub trait FromRequest: Sized {
    /// Takes the value from `request`.
    fn from_request(request: &Request) -> Result<Self, Error>;
}

/// A JSON body (request) of type `T`. An empty body, or one that is not a
/// `T`, is a business error (`InvalidArgument`, error code 400) and the
/// handler does not run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Json<T> {
    fn from_request(request: &Request) -> Result<Self, Error> {
        parse_body(&request.body).map(Json)
    }
}

/// The body as `T`, with isp-kit's errors for an empty or invalid one.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.is_empty() {
        return Err(Error::business(
            ERROR_CODE_BAD_REQUEST,
            "empty request body",
        ));
    }
    // The parser's text may quote the body: it stays in the process.
    serde_json::from_slice(body)
        .map_err(|e| Error::business(ERROR_CODE_BAD_REQUEST, "invalid request body").with_cause(e))
}

impl FromRequest for RequestId {
    fn from_request(request: &Request) -> Result<Self, Error> {
        Ok(request.request_id.clone())
    }
}

impl FromRequest for Identity {
    fn from_request(request: &Request) -> Result<Self, Error> {
        Ok(Identity::of(&request.metadata))
    }
}

impl FromRequest for TraceContext {
    fn from_request(request: &Request) -> Result<Self, Error> {
        Ok(TraceContext::of(&request.metadata))
    }
}

impl FromRequest for Metadata {
    fn from_request(request: &Request) -> Result<Self, Error> {
        Ok(request.metadata.clone())
    }
}

impl FromRequest for Forward {
    fn from_request(request: &Request) -> Result<Self, Error> {
        let mut forward = Forward::of(&request.metadata);
        forward.request_id = Some(request.request_id.clone());
        Ok(forward)
    }
}

impl FromRequest for Bytes {
    /// The raw body (JSON or empty), unchecked.
    fn from_request(request: &Request) -> Result<Self, Error> {
        Ok(request.body.clone())
    }
}

/// An async function usable as an endpoint: up to six [`FromRequest`]
/// arguments, returning `Result<R, E>` with `R: Serialize` (the JSON
/// response) and `E: Into<Error>`.
///
/// ```
/// use isp_cluster::rpc::{Error, Identity, Json, RequestId, Router};
///
/// #[derive(serde::Deserialize)]
/// struct Get { id: u64 }
/// #[derive(serde::Serialize)]
/// struct Order { id: u64, owner: Option<String> }
///
/// async fn get_order(identity: Identity, Json(get): Json<Get>) -> Result<Order, Error> {
///     if get.id == 0 {
///         return Err(Error::business(404, "order not found"));
///     }
///     Ok(Order { id: get.id, owner: identity.user_id })
/// }
///
/// let router = Router::new().route("orders/order/get", get_order);
/// assert_eq!(router.endpoints()[0].path, "orders/order/get");
/// ```
pub trait Handler<Args>: Clone + Send + Sync + 'static {
    /// Runs the handler on `request`.
    fn call(&self, request: Request) -> BoxFuture<Result<Bytes, Error>>;
}

/// The JSON of a handler's answer; `()` (nothing to answer) is an empty
/// body, as a Go handler that returns only an error answers.
pub(crate) fn encode<R: Serialize + 'static>(reply: &R) -> Result<Bytes, Error> {
    if std::any::TypeId::of::<R>() == std::any::TypeId::of::<()>() {
        return Ok(Bytes::new());
    }
    serde_json::to_vec(reply)
        .map(Bytes::from)
        .map_err(Error::internal)
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, E, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = Result<R, E>> + Send + 'static,
            R: Serialize + 'static,
            E: Into<Error>,
            $($arg: FromRequest + Send + 'static,)*
        {
            fn call(&self, request: Request) -> BoxFuture<Result<Bytes, Error>> {
                $(
                    let $arg = match $arg::from_request(&request) {
                        Ok(value) => value,
                        Err(e) => return Box::pin(std::future::ready(Err(e))),
                    };
                )*
                let future = (self)($($arg),*);
                Box::pin(async move {
                    let reply = future.await.map_err(Into::into)?;
                    encode(&reply)
                })
            }
        }
    };
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);
impl_handler!(A1, A2, A3, A4, A5);
impl_handler!(A1, A2, A3, A4, A5, A6);

pub(crate) fn boxed<H, A>(handler: H) -> BoxedHandler
where
    H: Handler<A>,
{
    Arc::new(move |request| handler.call(request))
}

/// The message an actor endpoint receives: the JSON body as `T`, the
/// request's metadata, and the answer type `R` (the JSON response). Register
/// with [`Router::actor`](super::Router::actor).
///
/// ```
/// use actix::prelude::*;
/// use isp_cluster::rpc::{Call, Error};
///
/// struct Counter(u64);
/// impl Actor for Counter { type Context = Context<Self>; }
/// impl Handler<Call<u64, u64>> for Counter {
///     type Result = Result<u64, Error>;
///     fn handle(&mut self, call: Call<u64, u64>, _: &mut Context<Self>) -> Self::Result {
///         self.0 += call.body;
///         Ok(self.0)
///     }
/// }
/// ```
pub struct Call<T, R> {
    /// The request body.
    pub body: T,
    /// The endpoint (the router's name).
    pub endpoint: Arc<str>,
    /// The request id.
    pub request_id: RequestId,
    /// The identity keys.
    pub identity: Identity,
    /// The trace context.
    pub trace: TraceContext,
    /// Every key as received.
    pub metadata: Metadata,
    reply: PhantomData<fn() -> R>,
}

impl<T, R> Call<T, R> {
    /// What this call forwards to the next (request id, identity, trace).
    pub fn forward(&self) -> Forward {
        Forward {
            request_id: Some(self.request_id.clone()),
            identity: self.identity.clone(),
            trace: self.trace.clone(),
        }
    }
}

impl<T, R> fmt::Debug for Call<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("endpoint", &self.endpoint)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl<T: 'static, R: 'static> actix::Message for Call<T, R> {
    type Result = Result<R, Error>;
}

pub(crate) fn actor<T, R>(recipient: actix::Recipient<Call<T, R>>) -> BoxedHandler
where
    T: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    Arc::new(move |request: Request| {
        let recipient = recipient.clone();
        Box::pin(async move {
            let body: T = parse_body(&request.body)?;
            let call = Call {
                body,
                identity: Identity::of(&request.metadata),
                trace: TraceContext::of(&request.metadata),
                endpoint: request.endpoint,
                request_id: request.request_id,
                metadata: request.metadata,
                reply: PhantomData,
            };
            // The server bounds the whole call (deadline, handler timeout).
            match recipient.send(call).await {
                Ok(answer) => encode(&answer?),
                Err(mailbox) => Err(Error::internal(mailbox)),
            }
        })
    })
}

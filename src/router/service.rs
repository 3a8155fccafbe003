//! `tower::Service<Request>` for [`Router`] (feature `tower`): a router drops into a tower stack
//! (timeouts, concurrency limits, load shedding, tracing layers) as the innermost service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Router;
use crate::error::Error;
use crate::execute::Response;
use crate::request::Request;

/// [`Router::complete`] as a tower service. Always ready: the router has no back-pressure of its own
/// (its limits answer each request, admitted or refused); put a `ConcurrencyLimit` or
/// `LoadShed` layer in front for that. Cloning the router is cheap (one reference count), so each call
/// owns its clone and the future is `'static`.
///
/// ```
/// # #[cfg(feature = "tower")] {
/// use tower_service::Service;
/// use switchyard::{Request, Router, SimulatedProvider};
///
/// # async fn run() -> switchyard::Result<()> {
/// let catalog = switchyard::Catalog::new([switchyard::ModelProfile::new("m", "sim")])?;
/// let mut service = Router::builder().catalog(catalog).provider(SimulatedProvider::new("sim")).build()?;
/// let response = service.call(Request::new("hi")).await?;
/// assert_eq!(response.model().as_str(), "m");
/// # Ok(()) }
/// # let _ = run; }
/// ```
impl tower_service::Service<Request> for Router {
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let router = self.clone();
        Box::pin(async move { router.complete(request).await })
    }
}

//! [`Bedrock`] as the [`Service`] the on-demand pool calls: one Converse, InvokeModel or
//! embedding call through bedrock-runtime, by the client's own [`Bedrock::call`].

use std::future::Future;

use super::Bedrock;
use crate::engine::Service;
use crate::vocab::{Answer, CallError, Payload, ServiceTier};

impl Service for Bedrock {
    fn call(
        &self,
        model: &str,
        tier: Option<ServiceTier>,
        payloads: &[&Payload],
    ) -> impl Future<Output = Result<Vec<Answer>, CallError>> + Send {
        Bedrock::call(self, model, tier, payloads)
    }
}

//! What Bedrock accepts, as AWS's own service models say it: the vendored botocore models
//! ([`service_model`]) and a checker that walks a request down its operation's input shape
//! ([`check`]). The local server refuses by it what AWS would refuse; the runner checks by
//! it what it is about to send where a refusal would cost a run (a batch job's create).

pub mod bucket;
pub mod catalogue;
pub mod check;
pub mod known_models;
pub mod media;
pub mod model_id;
pub mod service_model;

pub use check::{HttpRequest, Refusal, check_input, check_request, check_shape};
pub use service_model::Service;

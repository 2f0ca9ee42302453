//! What Bedrock accepts, as AWS's own service models say it: the vendored botocore models
//! ([`model`]) and a checker that walks a request down its operation's input shape
//! ([`check`]). The local server refuses by it what AWS would refuse; the runner checks by
//! it what it is about to send where a refusal would cost a run (a batch job's create).

pub mod check;
pub mod model;

pub use check::{HttpRequest, Refusal, check_input, check_request, check_shape};
pub use model::Service;

//! nixery-aws: the core's storage and builder traits on AWS: S3 blobs,
//! a DynamoDB index and the builder Lambda client. The only crate that
//! depends on the AWS SDK; the core never does.

pub mod accounts;
pub mod clients;
pub mod dynamo;
pub mod env;
mod error;
pub mod lambda;
pub mod s3;
pub mod secrets;

//! `nixery-builder-lambda`: reads its settings, makes the SDK clients once, and serves
//! build requests from the registry Lambda under the Lambda runtime.

use lambda_runtime::{service_fn, LambdaEvent};
use nixery_aws::clients::{sdk_config, Clients};
use nixery_aws::lambda::BuildRequest;
use nixery_builder_lambda::{builder, handle, Settings};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let settings = Settings::from_env()?;
    let clients = Clients::from_sdk(&sdk_config().await);
    // Lambda's only writable place is /tmp (TMPDIR elsewhere).
    let work = std::env::temp_dir().join("nixery");
    let builder = Arc::new(builder(&settings, &clients, &work)?);
    tracing::info!(source = %builder.source().describe(), "builder ready");
    lambda_runtime::run(service_fn(|event: LambdaEvent<BuildRequest>| {
        let builder = builder.clone();
        async move { Ok::<_, lambda_runtime::Error>(handle(&builder, event.payload).await) }
    }))
    .await
}

//! `nixery-registry-lambda`: the registry router behind API Gateway. Reads
//! its settings, makes the SDK clients once, and hands the router to the
//! Lambda runtime.

use nixery_registry_lambda::{registry, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let settings = Settings::from_env()?;
    let sdk = nixery_aws::clients::sdk_config().await;
    let app = nixery_core::registry::router(registry(&settings, &sdk).await?);
    lambda_http::run(app)
        .await
        .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))
}

/// Logs to stdout for CloudWatch: JSON when the function's log format is
/// JSON, else plain text; never ANSI colours, no timestamps (CloudWatch adds them).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .without_time();
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

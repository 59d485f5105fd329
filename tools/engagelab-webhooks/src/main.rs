use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    mailhooks::engagelab_api::cli::main().await
}

//! The endpoint variables `template.yaml` declares for `sam local invoke --env-vars` (its
//! Globals) leave a deployed function on the AWS SDK's own endpoints, and the values of
//! `events/local-env.json` lead it to the local ones. Checked on the settings the DynamoDB and S3
//! clients are built from (`SdkConfig::service_config`, what `Builder::from(&SdkConfig)` reads).
//! One test in its own binary: it sets process environment variables.

mod support;

use aws_types::service_config::ServiceConfigKey;

fn endpoint_of(config: &aws_types::SdkConfig, service_id: &str) -> Option<String> {
    let key = ServiceConfigKey::builder().service_id(service_id).env("AWS_ENDPOINT_URL").profile("endpoint_url");
    let configured = config.service_config().expect("aws-config sets a service config");
    configured.load_config(key.build().expect("a complete key")).or_else(|| config.endpoint_url().map(str::to_owned))
}

fn set(name: &str, value: &str) {
    std::env::set_var(name, value);
}

#[tokio::test]
async fn the_inert_endpoint_settings_of_the_template_change_nothing_and_the_local_ones_apply() {
    let template = std::fs::read_to_string(support::repo_root().join("template.yaml")).unwrap();
    for line in [
        r#"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true""#,
        r#"AWS_ENDPOINT_URL_DYNAMODB: """#,
        r#"AWS_ENDPOINT_URL_S3: """#,
    ] {
        assert!(template.lines().any(|text| text.trim() == line), "template.yaml's Globals declare {line}");
    }
    set("AWS_REGION", "us-east-1");
    set("AWS_ACCESS_KEY_ID", "test");
    set("AWS_SECRET_ACCESS_KEY", "test");

    // An empty endpoint variable alone would be taken as the endpoint.
    set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false");
    set("AWS_ENDPOINT_URL_DYNAMODB", "");
    assert_eq!(endpoint_of(&mailhooks::config::sdk_config().await, "DynamoDB").as_deref(), Some(""));

    // Deployed: the template's values.
    set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
    set("AWS_ENDPOINT_URL_S3", "");
    let deployed = mailhooks::config::sdk_config().await;
    assert_eq!(endpoint_of(&deployed, "DynamoDB"), None);
    assert_eq!(endpoint_of(&deployed, "S3"), None);

    // sam local invoke: the env-vars file's values for a function.
    let file = std::fs::read_to_string(support::repo_root().join("events/local-env.json")).unwrap();
    let local: serde_json::Value = serde_json::from_str(&file).unwrap();
    let values = local["EngageLabWebhookFunction"].as_object().expect("the function's variables");
    for name in ["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"] {
        set(name, values[name].as_str().unwrap());
    }
    let invoked = mailhooks::config::sdk_config().await;
    assert_eq!(endpoint_of(&invoked, "DynamoDB").as_deref(), values["AWS_ENDPOINT_URL_DYNAMODB"].as_str());
    assert_eq!(endpoint_of(&invoked, "S3").as_deref(), values["AWS_ENDPOINT_URL_S3"].as_str());
}

//! Every answer of the stand-in, validated against the JSON schema that publiq's OpenAPI
//! document (`spec/uitpas-subset.json`) declares for its operation and status: the
//! stand-in cannot drift from the spec unnoticed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use uitpas_standin::{Fault, Kind, StandIn, CLIENT_ID, CLIENT_SECRET, PASSHOLDER_NAME};

fn spec() -> Value {
    let text = include_str!("../spec/uitpas-subset.json");
    serde_json::from_str(text).unwrap()
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer of the schema `spec` declares for `path`'s GET answering `status`.
fn schema_pointer(spec: &Value, path: &str, status: &str) -> String {
    let mut pointer = format!("/paths/{}/get/responses/{status}", escape(path));
    let mut response = spec
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("{path} {status} not in the spec"));
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        pointer = reference.trim_start_matches('#').to_owned();
        response = spec.pointer(&pointer).unwrap();
    }
    let (content_type, _) = response["content"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    format!("{pointer}/content/{}/schema", escape(content_type))
}

/// Validates `instance` against the schema at `pointer` (references resolve in the spec).
fn assert_valid(spec: &Value, pointer: &str, instance: &Value, what: &str) {
    let mut root = spec.clone();
    root["$ref"] = Value::String(format!("#{pointer}"));
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{instance}");
}

struct Client {
    http: reqwest::Client,
    standin: StandIn,
}

impl Client {
    async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let standin = StandIn::start().await.unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(standin.ca_pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        Self { http, standin }
    }

    async fn token(&self) -> String {
        let response = self
            .http
            .post(self.standin.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_u64().unwrap() > 0);
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
        let mut request = self.http.get(format!(
            "{}{}",
            self.standin.api_url(),
            path.trim_start_matches('/')
        ));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, content_type, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn permissions_and_every_kind_of_passholder_match_the_spec() {
    let spec = spec();
    let client = Client::start().await;
    let token = client.token().await;
    let (status, _, permissions) = client.get("/permissions", Some(&token)).await;
    assert_eq!(status, 200);
    assert_valid(
        &spec,
        &schema_pointer(&spec, "/permissions", "200"),
        &permissions,
        "permissions",
    );
    let page = schema_pointer(&spec, "/passholders", "200");
    // The validation bites: a page the spec does not allow is refused.
    let mut root = spec.clone();
    root["$ref"] = Value::String(format!("#{page}"));
    let validator = jsonschema::validator_for(&root).unwrap();
    assert!(!validator.is_valid(&json!({"totalItems": "many"})));
    assert!(!validator
        .is_valid(&json!({"member": [{"cardSystemMemberships": [{"status": "ACTIVE"}]}]})));
    for kind in Kind::ALL {
        let path = format!(
            "/passholders?inszNumber={}&organizerId={}",
            kind.national_number(),
            uitpas_standin::ORGANIZER_ID
        );
        let (status, _, body) = client.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{kind:?}");
        assert_valid(&spec, &page, &body, &format!("{kind:?}"));
        let members = body["member"].as_array().unwrap();
        assert_eq!(members.is_empty(), kind == Kind::None, "{kind:?}");
        if let Some(member) = members.first() {
            // Personal fields are there, on purpose: the gateway must drop them.
            assert_eq!(member["name"], PASSHOLDER_NAME);
            assert!(member["dateOfBirth"].is_string() && member["address"].is_object());
        }
    }
}

#[tokio::test]
async fn every_refusal_is_a_problem_of_the_spec() {
    let spec = spec();
    let client = Client::start().await;
    let search = format!(
        "/passholders?inszNumber={}",
        Kind::ActiveGent.national_number()
    );
    let (status, content_type, body) = client.get(&search, None).await;
    assert_eq!(status, 401);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_valid(
        &spec,
        &schema_pointer(&spec, "/passholders", "401"),
        &body,
        "401",
    );
    let token = client.token().await;
    client.standin.revoke_tokens();
    assert_eq!(
        client.get(&search, Some(&token)).await.0,
        401,
        "a revoked token"
    );
    let token = client.token().await;

    client.standin.forbid_search(true);
    let (status, _, body) = client.get(&search, Some(&token)).await;
    assert_eq!(status, 403);
    assert_valid(
        &spec,
        &schema_pointer(&spec, "/passholders", "403"),
        &body,
        "403",
    );
    let (_, _, permissions) = client.get("/permissions", Some(&token)).await;
    assert_valid(
        &spec,
        &schema_pointer(&spec, "/permissions", "200"),
        &permissions,
        "permissions without search",
    );
    assert!(!permissions.to_string().contains("PASSHOLDERS_SEARCH"));
    client.standin.forbid_search(false);

    client.standin.fail_next(Fault::Problem {
        status: 400,
        problem_type: "https://api.publiq.be/probs/uitpas/invalid-insz-number",
        title: "Invalid insz number",
        end_user_message: Some("Ongeldig rijksregisternummer."),
    });
    let (status, _, body) = client.get(&search, Some(&token)).await;
    assert_eq!(status, 400);
    assert_valid(
        &spec,
        &schema_pointer(&spec, "/passholders", "400"),
        &body,
        "400",
    );
    // 429 and 5xx are not declared for the operation: publiq's Error model applies.
    for (fault, want) in [
        (Fault::Status(429, Some(2)), 429),
        (Fault::Status(503, None), 503),
    ] {
        client.standin.fail_next(fault);
        let (status, _, body) = client.get(&search, Some(&token)).await;
        assert_eq!(status, want);
        assert_valid(
            &spec,
            "/components/schemas/Error",
            &body,
            &format!("{want}"),
        );
    }
    client.standin.fail_next(Fault::Malformed);
    let response = client
        .http
        .get(format!(
            "{}passholders?inszNumber=1",
            client.standin.api_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).is_err());
}

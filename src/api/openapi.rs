//! `GET /v1/openapi.json`: the local API as OpenAPI 3.1 (prose: docs/local-api.md).

use axum::Json;
use serde_json::{json, Value};

pub async fn document() -> Json<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let errors = |codes: &[&str]| -> Value {
        codes
            .iter()
            .map(|code| ((*code).to_owned(), json!({"description": "error", "content": {"application/json": {"schema": error}}})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let responses = |ok: Value, codes: &[&str]| {
        let mut all = errors(codes);
        all["200"] = ok;
        all
    };
    let json_ok = |description: &str| json!({"description": description, "content": {"application/json": {}}});
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "beid-agent local API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Loopback only; Host and Origin checked on every request; see docs/local-api.md."},
        "servers": [{"url": "http://127.0.0.1:8099"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}
        },
        "paths": {
            "/v1/status": {"get": {"responses": responses(json_ok("agent, pcscd, readers, upstream, use cases"), &["401", "403"])}},
            "/v1/readers": {"get": {"responses": responses(json_ok("readers"), &["401", "403"])}},
            "/v1/sessions/{session}": {"get": {
                "parameters": [{"name": "session", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                "responses": responses(json_ok("card summary for the client's scopes"), &["401", "403", "404", "410"])}},
            "/v1/sessions/{session}/advice": {"post": {
                "parameters": [{"name": "session", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                    "required": ["useCase"], "properties": {"useCase": {"type": "string"}}}}}},
                "responses": responses(json_ok("the decision: eligible | not_eligible | unknown"), &["400", "401", "403", "404", "409", "410", "413", "415"])}},
            "/v1/events/ticket": {"post": {"responses": responses(json_ok("a single-use ticket valid 30 s"), &["401", "403"])}},
            "/v1/events": {"get": {"security": [],
                "parameters": [{"name": "ticket", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": responses(json!({"description": "Server-Sent Events", "content": {"text/event-stream": {}}}), &["401", "403"])}},
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
            "/metrics": {"get": {"security": [], "responses": {"200": {"description": "Prometheus text"}}}}
        }
    }))
}

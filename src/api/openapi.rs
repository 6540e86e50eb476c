//! `GET /v1/openapi.json`: the local API as OpenAPI 3.1, generated from the types the
//! handlers answer with ([`super::views`]) and the error table ([`ApiError::ALL`]), so it
//! cannot drift from the code. The prose is `docs/local-api.md`.

use axum::http::StatusCode;
use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::views::{
    AdviceBody, AdviceView, ErrorView, InsertBody, InsertedView, NationalNumberView, OutcomeBody,
    OutcomeView, RemoveBody, SessionView, StatusView, StreamEvent, TicketView,
};
use crate::session::ReaderView;

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Access {
    /// Host checked only.
    Open,
    /// A bearer token with this scope.
    Scope(&'static str),
    /// An event ticket.
    Ticket,
}

/// One operation of the API.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    access: Access,
    request: Option<Value>,
    /// The `200` (or other success) status, its media type and schema.
    success: (u16, &'static str, Option<Value>),
    /// Error statuses besides those of every authenticated call.
    errors: &'static [&'static str],
}

/// The document.
pub async fn document() -> Json<Value> {
    Json(build())
}

/// Builds the document (public for tests and the linter run).
pub fn build() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let operations = operations(&mut generator);
    let error_schema = schema::<ErrorView>(&mut generator);
    let mut paths = Map::new();
    for op in &operations {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation(op, &error_schema);
    }
    let mut schemas = generator.take_definitions(true);
    // An error's `error` is one of the codes of the table, as the ErrorCode enum lists them.
    if let Some(code) = schemas
        .get_mut("ErrorView")
        .and_then(|view| view.pointer_mut("/properties/error"))
    {
        code["$ref"] = json!("#/components/schemas/ErrorCode");
        if let Some(fields) = code.as_object_mut() {
            fields.remove("type");
        }
    }
    schemas.insert(
        "ErrorCode".into(),
        json!({
            "type": "string",
            "description": "Every error code the API answers, with its status.",
            "enum": ApiError::ALL.iter().map(|e| e.code).collect::<Vec<_>>(),
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "beid-agent local API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The agent's API for the counter's point of sale, the counter page and the kiosk page: loopback only; the Host checked on every request, the Origin on every request that has one; bearer tokens with scopes. Prose, rules and examples: docs/local-api.md.",
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}
        },
        "servers": [{"url": "http://127.0.0.1:8099", "description": "the agent's default listen address"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "cards", "description": "Readers, card sessions, advice and the clerk's outcome."},
            {"name": "events", "description": "Live events over Server-Sent Events."},
            {"name": "agent", "description": "Liveness, metrics and this document."},
            {"name": "simulator", "description": "Only with `serve --simulate`."}
        ],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A client's token (`[[api.clients]]`)."},
                "ticket": {"type": "apiKey", "in": "query", "name": "ticket", "description": "A single-use ticket from `POST /v1/events/ticket`."}
            },
            "schemas": schemas
        },
        "paths": paths
    })
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn operations(g: &mut SchemaGenerator) -> Vec<Operation> {
    let session_errors: &[&str] = &["404", "410"];
    vec![
        Operation {
            method: "get",
            path: "/v1/status",
            id: "getStatus",
            summary: "The agent: version, pcscd, readers, upstream, use cases, the counter's deviation reasons.",
            access: Access::Scope("advice"),
            request: None,
            success: (200, "application/json", Some(schema::<StatusView>(g))),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/readers",
            id: "listReaders",
            summary: "The readers and their state.",
            access: Access::Scope("advice"),
            request: None,
            success: (200, "application/json", Some(schema::<Vec<ReaderView>>(g))),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/sessions/{session}",
            id: "getSession",
            summary: "A card session: its state, the card, its authenticity, the advice and outcomes so far; the identity with scope identity.",
            access: Access::Scope("advice"),
            request: None,
            success: (200, "application/json", Some(schema::<SessionView>(g))),
            errors: session_errors,
        },
        Operation {
            method: "get",
            path: "/v1/sessions/{session}/national-number",
            id: "getNationalNumber",
            summary: "The citizen's national number, when the clerk asks for it (scope national-number; audited).",
            access: Access::Scope("national-number"),
            request: None,
            success: (200, "application/json", Some(schema::<NationalNumberView>(g))),
            errors: &["404", "409", "410"],
        },
        Operation {
            method: "post",
            path: "/v1/sessions/{session}/advice",
            id: "askAdvice",
            summary: "The advice for a use case: waits for the read; asked upstream once per session and use case.",
            access: Access::Scope("advice"),
            request: Some(schema::<AdviceBody>(g)),
            success: (200, "application/json", Some(schema::<AdviceView>(g))),
            errors: &["400", "404", "409", "410", "413", "415"],
        },
        Operation {
            method: "post",
            path: "/v1/sessions/{session}/outcome",
            id: "recordOutcome",
            summary: "The clerk's final decision on an advice (once per session and use case); a deviation reason when it differs from the advice.",
            access: Access::Scope("advice"),
            request: Some(schema::<OutcomeBody>(g)),
            success: (200, "application/json", Some(schema::<OutcomeView>(g))),
            errors: &["400", "404", "409", "410", "413", "415", "422"],
        },
        Operation {
            method: "post",
            path: "/v1/events/ticket",
            id: "createEventTicket",
            summary: "A single-use ticket, valid 30 s, to open the event stream (EventSource cannot send a token); refused while the client (429) or the agent (503) has as many streams open as it may.",
            access: Access::Scope("advice"),
            request: None,
            success: (200, "application/json", Some(schema::<TicketView>(g))),
            errors: &["503"],
        },
        Operation {
            method: "get",
            path: "/v1/events",
            id: "streamEvents",
            summary: "Server-Sent Events: a snapshot first, then every event with its id; each event's data is one of StreamEvent. At most 16 streams per client (429) and 256 in all (503).",
            access: Access::Ticket,
            request: None,
            success: (200, "text/event-stream", Some(schema::<StreamEvent>(g))),
            errors: &["503"],
        },
        Operation {
            method: "get",
            path: "/v1/simulator/cards",
            id: "listSimulatedCards",
            summary: "The fixture cards that can be inserted (simulation only).",
            access: Access::Scope("advice"),
            request: None,
            success: (200, "application/json", Some(schema::<Vec<String>>(g))),
            errors: &["404"],
        },
        Operation {
            method: "post",
            path: "/v1/simulator/insert",
            id: "insertSimulatedCard",
            summary: "Inserts a fixture card; answers once the agent saw it (simulation only).",
            access: Access::Scope("advice"),
            request: Some(schema::<InsertBody>(g)),
            success: (200, "application/json", Some(schema::<InsertedView>(g))),
            errors: &["400", "404", "413", "415"],
        },
        Operation {
            method: "post",
            path: "/v1/simulator/remove",
            id: "removeSimulatedCard",
            summary: "Removes the card of a simulated reader (simulation only).",
            access: Access::Scope("advice"),
            request: Some(schema::<RemoveBody>(g)),
            success: (204, "", None),
            errors: &["400", "404", "413", "415"],
        },
        Operation {
            method: "get",
            path: "/healthz",
            id: "health",
            summary: "Liveness.",
            access: Access::Open,
            request: None,
            success: (200, "text/plain", Some(json!({"type": "string", "const": "ok"}))),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/metrics",
            id: "metrics",
            summary: "Prometheus text: counters, no personal data in any label (scope metrics: the counters show outcomes as they happen).",
            access: Access::Scope("metrics"),
            request: None,
            success: (200, "text/plain", Some(json!({"type": "string"}))),
            errors: &[],
        },
        Operation {
            method: "get",
            path: "/v1/openapi.json",
            id: "openapi",
            summary: "This document.",
            access: Access::Open,
            request: None,
            success: (200, "application/json", Some(json!({"type": "object"}))),
            errors: &[],
        },
    ]
}

fn operation(op: &Operation, error_schema: &Value) -> Value {
    let tag = if op.path.starts_with("/v1/simulator") {
        "simulator"
    } else if op.path.starts_with("/v1/events") {
        "events"
    } else if op.path.starts_with("/v1/") && op.path != "/v1/openapi.json" {
        "cards"
    } else {
        "agent"
    };
    let (status, media, body) = &op.success;
    let mut success = json!({"description": reason(*status)});
    if let Some(body) = body {
        success["content"] = json!({ *media: {"schema": body} });
    }
    let mut responses = Map::new();
    responses.insert(status.to_string(), success);
    // Every request: several Host headers or a foreign absolute-form target (400), the Host
    // and several Origins (403), every connection busy (503); every authenticated one: token
    // or ticket (401), scope and origin (403), the client's rate and failed authentications
    // (429).
    let mut statuses: Vec<&str> = vec!["400", "403", "503"];
    match op.access {
        Access::Open => {}
        Access::Scope(_) | Access::Ticket => statuses.extend(["401", "429"]),
    }
    statuses.extend(op.errors);
    statuses.push("405");
    statuses.sort_unstable();
    statuses.dedup();
    for code in statuses {
        let codes: Vec<&str> = ApiError::ALL
            .iter()
            .filter(|e| e.status.as_str() == code)
            .map(|e| e.code)
            .collect();
        responses.insert(
            code.to_owned(),
            json!({
                "description": format!("{}: {}", reason(code.parse().unwrap_or(500)), codes.join(", ")),
                "content": {"application/json": {"schema": error_schema}}
            }),
        );
    }
    let mut value = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [tag],
        "responses": responses,
    });
    match op.access {
        Access::Open => value["security"] = json!([]),
        Access::Ticket => value["security"] = json!([{"ticket": []}]),
        Access::Scope(scope) => {
            value["description"] = json!(format!("Scope `{scope}`."));
        }
    }
    if op.path.contains("{session}") {
        value["parameters"] = json!([{
            "name": "session", "in": "path", "required": true,
            "description": "The card session's id (from card-inserted or GET /v1/readers).",
            "schema": {"type": "string", "format": "uuid"}
        }]);
    }
    if let Some(request) = &op.request {
        value["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": request}}
        });
    }
    value
}

fn reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_a_documented_status_on_some_operation() {
        let document = build();
        let operations: Vec<&Value> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|path| path.as_object().unwrap().values())
            .collect();
        for error in ApiError::ALL {
            let documented = operations.iter().any(|op| {
                op["responses"][error.status.as_str()]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(error.code))
            });
            assert!(
                documented,
                "{} ({}) is not documented",
                error.code, error.status
            );
        }
        let ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|path| path.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "operation ids must be unique");
        assert!(ids.contains(&"recordOutcome"));
    }
}

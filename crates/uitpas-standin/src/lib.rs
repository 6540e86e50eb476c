//! uitpas-standin: a stand-in for the UiTPAS API 4.0 (publiq) and its token endpoint, for
//! tests and benchmarks only. An in-process HTTPS server on 127.0.0.1, port 0, with a test CA
//! of its own, a synthetic dataset of passholders and a knob for every failure the gateway
//! must survive.
//!
//! It answers what the gateway asks, shaped as the public OpenAPI says (the parts it
//! implements are copied in `spec/`, and `tests/schema.rs` validates every answer against
//! their JSON schemas, so the stand-in cannot drift from the spec):
//!
//! - `POST /realms/uitid/protocol/openid-connect/token`: OAuth2 client credentials
//!   (form-urlencoded), as publiq's authorization server;
//! - `GET /permissions`: the organizer and its permissions with their card systems;
//! - `GET /passholders?inszNumber=&organizerId=`: the passholder search by INSZ.
//!
//! Every national number in the dataset is synthetic: a birth month of 61 to 72 (no INSZ
//! uses one) with a valid check number. Personal fields (name, address, birth date, email,
//! phone) are fictional and present on purpose: the gateway must drop them.
#![forbid(unsafe_code)]

mod dataset;
mod server;

pub use dataset::{Kind, ORGANIZER_ID, OTHER_REGION_CARD_SYSTEM, PASSHOLDER_NAME};
pub use server::{Fault, StandIn, CLIENT_ID, CLIENT_SECRET, TOKEN_PATH};

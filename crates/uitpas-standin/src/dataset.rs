//! The synthetic dataset: one passholder per kind of the public test dataset
//! (`projects/uitpas/docs/test-dataset.md`), under national numbers nobody carries.

use serde_json::{json, Value};

/// The organizer the gateway is configured for: the test dataset's
/// "[TEST] UiTPAS Organisatie (Regio Gent + Paspartoe)".
pub const ORGANIZER_ID: &str = "0ce87cbc-9299-4528-8d35-92225dc9489f";

/// The organizer's card systems (Gent, Paspartoe) and a card system of another region.
pub(crate) const GENT: (i64, &str) = (2, "UiTPAS Gent");
pub(crate) const PASPARTOE: (i64, &str) = (3, "Paspartoe");
/// A card system the organizer has no permission on ("UiTPAS Dender").
pub const OTHER_REGION_CARD_SYSTEM: i64 = 1;
const DENDER: (i64, &str) = (OTHER_REGION_CARD_SYSTEM, "UiTPAS Dender");

/// The fictional last name every passholder of the dataset carries: a test can look for it
/// in a log to prove personal fields were dropped.
pub const PASSHOLDER_NAME: &str = "Fictiefnaam";

/// The kinds of passholder of the public test dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Membership of the organizer's card system (Gent), social tariff ACTIVE.
    ActiveGent,
    /// Social tariff ACTIVE, but in another region's card system only.
    ActiveOtherRegion,
    /// Social tariff EXPIRED.
    Expired,
    /// Social tariff SUSPENDED (with `suspendedUntilDate`).
    Suspended,
    /// Social tariff ACTIVE, but the card and the membership are BLOCKED.
    Blocked,
    /// No passholder with this national number.
    None,
    /// The adult of a family account (online UiTPAS): a membership without social tariff.
    FamilyParent,
    /// The child of that family account: its own membership, social tariff ACTIVE.
    FamilyChild,
    /// Social tariff ACTIVE, its end date passed, in the grace period.
    GracePeriod,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 9] = [
        Kind::ActiveGent,
        Kind::ActiveOtherRegion,
        Kind::Expired,
        Kind::Suspended,
        Kind::Blocked,
        Kind::None,
        Kind::FamilyParent,
        Kind::FamilyChild,
        Kind::GracePeriod,
    ];

    /// The kind's own synthetic national number (month 61-72, valid check number).
    pub fn national_number(self) -> &'static str {
        match self {
            Kind::ActiveGent => "85610100147",
            Kind::ActiveOtherRegion => "85620200322",
            Kind::Expired => "85630300594",
            Kind::Suspended => "85640400769",
            Kind::Blocked => "85650500944",
            Kind::None => "85660601119",
            Kind::FamilyParent => "72690701326",
            Kind::FamilyChild => "72690701425",
            Kind::GracePeriod => "90700801588",
        }
    }

    /// The kind of a national number: the kinds' own numbers, and the repository's fixture
    /// cards (`fixtures/expected/`): `gen-1.8-ec` is active in Gent, `gen-1.7-rsa2048`
    /// expired, the Alice specimen cards blocked. Anyone else has no passholder.
    pub fn of(national_number: &str) -> Kind {
        match national_number {
            "03641299855" => Kind::ActiveGent,
            "85671599731" => Kind::Expired,
            "71715100070" => Kind::Blocked,
            other => Kind::ALL
                .into_iter()
                .find(|kind| kind.national_number() == other)
                .unwrap_or(Kind::None),
        }
    }
}

/// `GET /passholders` for one national number: a `PassholdersPaginatedResponse`.
pub(crate) fn passholders(national_number: &str) -> Value {
    let members: Vec<Value> = match Kind::of(national_number) {
        Kind::None => Vec::new(),
        kind => vec![passholder(national_number, kind)],
    };
    json!({"totalItems": members.len(), "member": members})
}

fn passholder(national_number: &str, kind: Kind) -> Value {
    let number = uitpas_number(national_number);
    let memberships = match kind {
        Kind::ActiveGent => vec![membership(
            GENT,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(active()),
        )],
        Kind::ActiveOtherRegion => vec![membership(
            DENDER,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(active()),
        )],
        Kind::Expired => vec![membership(
            GENT,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(
                json!({"status": "EXPIRED", "endDate": "2024-12-31T22:59:59+00:00",
                "inGracePeriod": false, "expired": true}),
            ),
        )],
        Kind::Suspended => vec![membership(
            PASPARTOE,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(
                json!({"status": "SUSPENDED", "endDate": "2027-12-31T22:59:59+00:00",
                "inGracePeriod": false, "suspendedUntilDate": "2027-03-31T21:59:59+00:00"}),
            ),
        )],
        Kind::Blocked => vec![membership(
            GENT,
            &number,
            "BLOCKED",
            "BLOCKED",
            Some(active()),
        )],
        Kind::FamilyParent => vec![
            membership(GENT, &number, "ACTIVE", "ACTIVE", None),
            // A membership elsewhere with a social tariff: not the organizer's card system.
            membership(DENDER, &number, "ACTIVE", "ACTIVE", Some(active())),
        ],
        Kind::FamilyChild => vec![membership(
            GENT,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(active()),
        )],
        Kind::GracePeriod => vec![membership(
            GENT,
            &number,
            "ACTIVE",
            "ACTIVE",
            Some(
                json!({"status": "ACTIVE", "endDate": "2025-01-31T22:59:59+00:00",
                "inGracePeriod": true, "expired": false}),
            ),
        )],
        Kind::None => Vec::new(),
    };
    // Digital cards for the family account (online UiTPAS), NFC cards otherwise.
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": PASSHOLDER_NAME,
        "firstName": "Testvoornaam",
        "inszNumber": national_number,
        "dateOfBirth": "1985-01-01",
        "gender": "X",
        "email": "fictief@example.invalid",
        "phoneNumber": "+32 9 000 00 00",
        "address": {"street": "Teststraat 1", "postalCode": "9000", "city": "Gent", "country": "BE"},
        "postalCode": "9000",
        "city": "Gent",
        "creationDate": "2020-01-01T10:00:00+00:00",
        "registrationOrganizer": {"id": ORGANIZER_ID, "name": "[TEST] UiTPAS Organisatie (Regio Gent + Paspartoe)"},
        "points": 10,
        "uitidStatus": if matches!(kind, Kind::FamilyParent | Kind::FamilyChild) { "REGISTERED" } else { "UNREGISTERED" },
        "uitpasNumber": number,
        "cardSystemMemberships": memberships,
    })
}

fn active() -> Value {
    json!({"status": "ACTIVE", "endDate": "2027-12-31T22:59:59+00:00",
        "inGracePeriod": false, "expired": false})
}

fn membership(
    card_system: (i64, &str),
    number: &str,
    status: &str,
    card_status: &str,
    social_tariff: Option<Value>,
) -> Value {
    let mut membership = json!({
        "cardSystem": {"id": card_system.0, "name": card_system.1, "permanent": true,
            "cities": [{"postalCode": "9000", "name": "Gent"}]},
        "uitpasNumber": number,
        "currentCard": {"uitpasNumber": number, "cardType": "NFC_CARD", "status": card_status},
        "status": status,
    });
    if let (Some(object), Some(tariff)) = (membership.as_object_mut(), social_tariff) {
        object.insert("socialTariff".into(), tariff);
    }
    membership
}

/// A 13-digit UiTPAS number derived from the national number (the test dataset's numbers
/// start with 09).
fn uitpas_number(national_number: &str) -> String {
    let digits: String = national_number.chars().rev().take(11).collect();
    format!("09{digits}")
}

/// `GET /permissions`: the organizer, with the passholder search permission on its card
/// systems unless `search_allowed` is false.
pub(crate) fn permissions(search_allowed: bool) -> Value {
    let systems = [GENT.0, PASPARTOE.0];
    let mut details = vec![
        json!({"id": "TARIFFS_READ", "label": {"nl": "Tarieven opvragen"},
        "cardSystemIds": systems}),
    ];
    let mut permissions = vec!["TARIFFS_READ"];
    if search_allowed {
        details.push(
            json!({"id": "PASSHOLDERS_SEARCH", "label": {"nl": "Pashouders zoeken"},
            "cardSystemIds": systems}),
        );
        permissions.push("PASSHOLDERS_SEARCH");
    }
    json!([{
        "organizer": {"id": ORGANIZER_ID, "name": "[TEST] UiTPAS Organisatie (Regio Gent + Paspartoe)",
            "address": {"postalCode": "9000", "city": "Gent"}},
        "permissions": permissions,
        "permissionDetails": details,
    }])
}

/// An RFC 7807 problem as publiq writes it (`Error` schema).
pub(crate) fn problem(
    status: u16,
    problem_type: &str,
    title: &str,
    end_user_message: Option<&str>,
) -> Value {
    let mut body = json!({"type": problem_type, "title": title, "status": status});
    if let (Some(object), Some(message)) = (body.as_object_mut(), end_user_message) {
        object.insert("endUserMessage".into(), json!({"nl": message}));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_synthetic_with_a_valid_check() {
        for kind in Kind::ALL {
            let number = kind.national_number();
            let month: u32 = number[2..4].parse().unwrap_or(0);
            assert!((61..=72).contains(&month), "{number}");
            let body: u64 = number[..9].parse().unwrap_or(0);
            let check: u64 = number[9..].parse().unwrap_or(0);
            assert_eq!(97 - body % 97, check, "{number}");
            assert_eq!(Kind::of(number), kind);
        }
    }
}

//! `GET /passholders?inszNumber=&organizerId=` read and decided.
//!
//! Only what the decision needs is parsed: each membership's card system, status, current
//! card status and social tariff status. The passholder's personal fields (name, first
//! name, address, birth date, email, phone, ...) are never parsed into memory: serde skips
//! them while reading, and the raw body is wiped after parsing.

use std::collections::BTreeSet;

use beid_core::contract::{AnswerDecision, Basis};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::sources::{Reason, SourceAnswer};

/// `PassholdersPaginatedResponse`, only `member`.
#[derive(Deserialize)]
struct Page {
    member: Vec<Member>,
}

/// `Passholder`, only the INSZ (to match it) and the memberships.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    #[serde(default)]
    insz_number: Option<Insz>,
    #[serde(default)]
    card_system_memberships: Vec<Membership>,
}

/// A national number from the answer: compared, never shown, wiped when dropped.
#[derive(Deserialize)]
#[serde(transparent)]
struct Insz(String);

impl Drop for Insz {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Membership {
    card_system: CardSystem,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    current_card: Option<Card>,
    #[serde(default)]
    social_tariff: Option<SocialTariff>,
}

#[derive(Deserialize)]
struct CardSystem {
    id: i64,
}

#[derive(Deserialize)]
struct Card {
    status: String,
}

/// `endDate` is information only (publiq: `status` may stay ACTIVE past it, in a grace
/// period): it is not even read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SocialTariff {
    status: String,
    #[serde(default)]
    in_grace_period: bool,
}

/// The decision for `national_number` from a passholder search answer, over the
/// organizer's `card_systems`. `None`: the body is not a passholder page.
pub(super) fn decide(
    body: &[u8],
    national_number: &str,
    card_systems: &BTreeSet<i64>,
) -> Option<SourceAnswer> {
    // An object with a `member` array, nothing else: a malformed answer must not read as
    // an empty page (which would be a "no").
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !value.get("member").is_some_and(serde_json::Value::is_array) {
        return None;
    }
    let page: Page = serde_json::from_value(value).ok()?;
    // Only this person's memberships: a family account's other members (had the search
    // returned them) must not lend theirs.
    let memberships: Vec<&Membership> = page
        .member
        .iter()
        .filter(|member| {
            member
                .insz_number
                .as_ref()
                .is_none_or(|insz| insz.0 == national_number)
        })
        .flat_map(|member| &member.card_system_memberships)
        .filter(|membership| card_systems.contains(&membership.card_system.id))
        .collect();
    Some(judge(&memberships))
}

fn judge(memberships: &[&Membership]) -> SourceAnswer {
    let registered =
        |decision, reason| SourceAnswer::decided(decision, Basis::RegisteredStatus, reason);
    let blocked = |m: &Membership| {
        m.status.as_deref() == Some("BLOCKED")
            || m.current_card
                .as_ref()
                .is_some_and(|card| card.status == "BLOCKED")
    };
    if let Some(active) = memberships.iter().find(|m| {
        !blocked(m) && m.status.as_deref() == Some("ACTIVE") && tariff(m) == Some("ACTIVE")
    }) {
        let grace = active
            .social_tariff
            .as_ref()
            .is_some_and(|t| t.in_grace_period);
        return registered(
            AnswerDecision::Eligible,
            grace.then_some(Reason::InGracePeriod),
        );
    }
    if memberships.iter().any(|m| blocked(m)) {
        return SourceAnswer::unknown(Reason::CardBlocked);
    }
    let understood = |m: &&&Membership| {
        matches!(m.status.as_deref(), Some("ACTIVE"))
            && matches!(tariff(m), None | Some("ACTIVE" | "EXPIRED" | "SUSPENDED"))
    };
    if !memberships.iter().all(|m| understood(&m)) {
        // A status this version does not know: never read it as a "no".
        return SourceAnswer::unknown(Reason::SourceMalformed);
    }
    let any = |status| memberships.iter().any(|m| tariff(m) == Some(status));
    let reason = if any("SUSPENDED") {
        Reason::SocialTariffSuspended
    } else if any("EXPIRED") {
        Reason::SocialTariffExpired
    } else if memberships.is_empty() {
        Reason::NotRegistered
    } else {
        Reason::NoSocialTariff
    };
    registered(AnswerDecision::NotEligible, Some(reason))
}

fn tariff(membership: &Membership) -> Option<&str> {
    membership.social_tariff.as_ref().map(|t| t.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NUMBER: &str = "85610100147";

    fn systems() -> BTreeSet<i64> {
        [2, 3].into_iter().collect()
    }

    fn page(memberships: serde_json::Value) -> Vec<u8> {
        json!({"totalItems": 1, "member": [{"id": "x", "name": "Fictiefnaam", "inszNumber": NUMBER,
            "dateOfBirth": "1985-01-01", "cardSystemMemberships": memberships}]})
        .to_string()
        .into_bytes()
    }

    fn membership(
        system: i64,
        status: &str,
        card: &str,
        tariff: Option<(&str, bool)>,
    ) -> serde_json::Value {
        let mut m = json!({"cardSystem": {"id": system, "name": "x"}, "status": status,
            "currentCard": {"uitpasNumber": "0900000000000", "status": card}});
        if let Some((tariff, grace)) = tariff {
            m["socialTariff"] = json!({"status": tariff, "endDate": "2020-01-01T00:00:00+00:00", "inGracePeriod": grace});
        }
        m
    }

    fn answer(memberships: serde_json::Value) -> SourceAnswer {
        decide(&page(memberships), NUMBER, &systems()).unwrap()
    }

    fn reason(answer: &SourceAnswer) -> &str {
        answer.reason.as_ref().map_or("", Reason::code)
    }

    #[test]
    fn active_membership_and_tariff_in_the_organizers_system_is_eligible_on_registered_status() {
        let a = answer(json!([membership(
            2,
            "ACTIVE",
            "ACTIVE",
            Some(("ACTIVE", false))
        )]));
        assert_eq!(a.decision, AnswerDecision::Eligible);
        assert_eq!(a.basis, Some(Basis::RegisteredStatus));
        assert_eq!(a.reason, None);
        assert_eq!(
            a.valid_until, None,
            "endDate is never a decision's validity"
        );
    }

    #[test]
    fn grace_period_is_information_only() {
        let a = answer(json!([membership(
            3,
            "ACTIVE",
            "ACTIVE",
            Some(("ACTIVE", true))
        )]));
        assert_eq!(a.decision, AnswerDecision::Eligible);
        assert_eq!(reason(&a), "in_grace_period");
    }

    #[test]
    fn expired_and_suspended_are_no_with_their_reason() {
        let a = answer(json!([membership(
            2,
            "ACTIVE",
            "ACTIVE",
            Some(("EXPIRED", false))
        )]));
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "social_tariff_expired")
        );
        let a = answer(json!([membership(
            2,
            "ACTIVE",
            "ACTIVE",
            Some(("SUSPENDED", false))
        )]));
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "social_tariff_suspended")
        );
    }

    #[test]
    fn only_the_organizers_card_systems_count() {
        let a = answer(json!([membership(
            1,
            "ACTIVE",
            "ACTIVE",
            Some(("ACTIVE", false))
        )]));
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "not_registered")
        );
        let a = answer(json!([
            membership(2, "ACTIVE", "ACTIVE", None),
            membership(1, "ACTIVE", "ACTIVE", Some(("ACTIVE", false)))
        ]));
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "no_social_tariff")
        );
    }

    #[test]
    fn no_passholder_is_not_registered() {
        let a = decide(br#"{"totalItems":0,"member":[]}"#, NUMBER, &systems()).unwrap();
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "not_registered")
        );
        let a = decide(
            br#"{"member":[{"inszNumber":"85610100147"}]}"#,
            NUMBER,
            &systems(),
        )
        .unwrap();
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "not_registered")
        );
    }

    #[test]
    fn a_blocked_card_or_membership_is_unknown_never_a_no() {
        for (status, card) in [
            ("BLOCKED", "ACTIVE"),
            ("ACTIVE", "BLOCKED"),
            ("BLOCKED", "BLOCKED"),
        ] {
            let a = answer(json!([membership(
                2,
                status,
                card,
                Some(("ACTIVE", false))
            )]));
            assert_eq!(
                (a.decision, reason(&a)),
                (AnswerDecision::Unknown, "card_blocked"),
                "{status} {card}"
            );
            let a = answer(json!([membership(
                2,
                status,
                card,
                Some(("EXPIRED", false))
            )]));
            assert_eq!(a.decision, AnswerDecision::Unknown);
        }
        // An active membership elsewhere in the organizer's systems still decides.
        let a = answer(json!([
            membership(2, "BLOCKED", "BLOCKED", None),
            membership(3, "ACTIVE", "ACTIVE", Some(("ACTIVE", false)))
        ]));
        assert_eq!(a.decision, AnswerDecision::Eligible);
    }

    #[test]
    fn an_unheard_of_status_is_unknown() {
        let a = answer(json!([membership(
            2,
            "ACTIVE",
            "ACTIVE",
            Some(("PENDING", false))
        )]));
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::Unknown, "source_malformed")
        );
    }

    #[test]
    fn another_members_memberships_are_not_lent() {
        let body = json!({"member": [
            {"inszNumber": "72690701326", "cardSystemMemberships": [membership(2, "ACTIVE", "ACTIVE", None)]},
            {"inszNumber": "72690701425", "cardSystemMemberships": [membership(2, "ACTIVE", "ACTIVE", Some(("ACTIVE", false)))]},
        ]})
        .to_string();
        let a = decide(body.as_bytes(), "72690701326", &systems()).unwrap();
        assert_eq!(
            (a.decision, reason(&a)),
            (AnswerDecision::NotEligible, "no_social_tariff")
        );
        let a = decide(body.as_bytes(), "72690701425", &systems()).unwrap();
        assert_eq!(a.decision, AnswerDecision::Eligible);
    }

    #[test]
    fn a_body_that_is_not_a_page_is_none() {
        for body in [
            &b"{"[..],
            b"[]",
            b"{}",
            br#"{"totalItems": 0}"#,
            br#"{"member": {}}"#,
            br#"{"member":[{"cardSystemMemberships":[{}]}]}"#,
        ] {
            assert!(
                decide(body, NUMBER, &systems()).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

//! `GET /permissions`: the card systems on which the configured organizer may search
//! passholders. Without that permission the source is misconfigured: it answers no check
//! (never a "no") and the gateway's health fails until publiq grants it.

use std::collections::BTreeSet;

use serde::Deserialize;

/// Any one of these lets `GET /passholders` search by INSZ (publiq's description of the
/// operation).
const SEARCH_PERMISSIONS: [&str; 3] = [
    "PASSHOLDERS_SEARCH",
    "PASSHOLDERS_SEARCH_BY_ID",
    "PASSHOLDERS_SEARCH_ALL",
];

/// What the source knows of its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permissions {
    /// Not asked successfully yet.
    Unknown,
    /// Asked: the organizer lacks what a search needs (a stable code says what).
    Missing(&'static str),
    /// The organizer's card systems.
    Granted(BTreeSet<i64>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrganizerPermissions {
    organizer: Organizer,
    #[serde(default)]
    permission_details: Vec<Detail>,
    #[serde(default)]
    linked_organizers: Vec<Linked>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Linked {
    organizer: Organizer,
    #[serde(default)]
    permission_details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Organizer {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    id: String,
    #[serde(default)]
    card_system_ids: Vec<i64>,
}

/// Reads a `GET /permissions` body for `organizer_id`. `None`: not such a body.
pub(crate) fn read(body: &[u8], organizer_id: &str) -> Option<Permissions> {
    let entries: Vec<OrganizerPermissions> = serde_json::from_slice(body).ok()?;
    let details = entries
        .iter()
        .flat_map(|entry| {
            let own = (entry.organizer.id == organizer_id).then_some(&entry.permission_details);
            let linked = entry
                .linked_organizers
                .iter()
                .filter(|linked| linked.organizer.id == organizer_id)
                .map(|linked| &linked.permission_details);
            own.into_iter().chain(linked)
        })
        .collect::<Vec<_>>();
    if details.is_empty() {
        return Some(Permissions::Missing("organizer_not_permitted"));
    }
    let search: Vec<&Detail> = details
        .into_iter()
        .flatten()
        .filter(|detail| SEARCH_PERMISSIONS.contains(&detail.id.as_str()))
        .collect();
    if search.is_empty() {
        return Some(Permissions::Missing("passholder_search_missing"));
    }
    let systems: BTreeSet<i64> = search
        .iter()
        .flat_map(|detail| detail.card_system_ids.iter().copied())
        .collect();
    if systems.is_empty() {
        return Some(Permissions::Missing("no_card_systems"));
    }
    Some(Permissions::Granted(systems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORG: &str = "0ce87cbc-9299-4528-8d35-92225dc9489f";

    fn body(organizer: &str, permission: &str, systems: &[i64]) -> Vec<u8> {
        json!([{"organizer": {"id": organizer, "name": "x"}, "permissions": [permission],
            "permissionDetails": [{"id": "TARIFFS_READ", "label": {"nl": "t"}, "cardSystemIds": [9]},
                {"id": permission, "label": {"nl": "p"}, "cardSystemIds": systems}]}])
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_search_permissions_card_systems_are_the_organizers() {
        for permission in SEARCH_PERMISSIONS {
            assert_eq!(
                read(&body(ORG, permission, &[2, 3]), ORG),
                Some(Permissions::Granted([2, 3].into_iter().collect()))
            );
        }
    }

    #[test]
    fn a_missing_permission_or_organizer_is_said() {
        assert_eq!(
            read(&body(ORG, "CHECKINS_WRITE", &[2]), ORG),
            Some(Permissions::Missing("passholder_search_missing"))
        );
        assert_eq!(
            read(&body("other", "PASSHOLDERS_SEARCH", &[2]), ORG),
            Some(Permissions::Missing("organizer_not_permitted"))
        );
        assert_eq!(
            read(&body(ORG, "PASSHOLDERS_SEARCH", &[]), ORG),
            Some(Permissions::Missing("no_card_systems"))
        );
        assert_eq!(read(b"{}", ORG), None);
    }

    #[test]
    fn a_linked_organizer_counts() {
        let body = json!([{"organizer": {"id": "parent"}, "linkedOrganizers": [
            {"organizer": {"id": ORG}, "permissionDetails": [{"id": "PASSHOLDERS_SEARCH", "cardSystemIds": [2]}]}]}]);
        assert_eq!(
            read(body.to_string().as_bytes(), ORG),
            Some(Permissions::Granted([2].into_iter().collect()))
        );
    }
}

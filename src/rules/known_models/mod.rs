//! The model ids Bedrock Runtime serves, and in which regions: base ids (with their
//! aliases) on demand in-region, and cross-region inference-profile ids from their source
//! regions. The data is generated from AWS's model cards (`model_ids.rs`, written by
//! `scripts/known-models`); the local server reads it to refuse what AWS would refuse, and
//! the catalogue's entries are checked against it so they name models that exist.

mod model_ids;

pub use model_ids::REGIONS;

/// One model: its base id, the other names of that id, and where each name is served.
#[derive(Debug)]
pub struct Model {
    pub id: &'static str,
    /// Other ids AWS accepts for the base model (`anthropic.claude-haiku-4-5`).
    pub aliases: &'static [&'static str],
    /// Regions serving the base id (and its aliases) on demand, as a mask over [`REGIONS`].
    pub in_region: u64,
    /// Inference-profile ids and the regions they can be called from.
    pub profiles: &'static [(&'static str, u64)],
}

/// Every model of the table.
pub fn all() -> &'static [Model] {
    model_ids::MODELS
}

/// Where an id stands in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Served there.
    Offered,
    /// A base id whose model this region serves only through inference profiles: AWS
    /// refuses on-demand calls with a hint to use a profile.
    ProfileOnly,
    /// Known, but not served in this region.
    NotInRegion,
    /// No model has this id.
    Unknown,
}

fn mask_of(region: &str) -> u64 {
    REGIONS
        .iter()
        .position(|r| *r == region)
        .map_or(0, |bit| 1 << bit)
}

/// `id` without an ARN's head: the resource name.
fn resource(id: &str) -> &str {
    let id = id.trim();
    match id.strip_prefix("arn:") {
        Some(_) => id.rsplit('/').next().unwrap_or(id),
        None => id,
    }
}

/// The model `id` names and the regions that serve `id` itself. An ARN is looked up by
/// its resource name.
fn lookup(id: &str) -> Option<(&'static Model, u64)> {
    let id = resource(id);
    all().iter().find_map(|model| {
        if model.id == id || model.aliases.contains(&id) {
            Some((model, model.in_region))
        } else {
            model
                .profiles
                .iter()
                .find(|(profile, _)| *profile == id)
                .map(|(_, regions)| (model, *regions))
        }
    })
}

/// Whether any region serves `id` (a base id, an alias, a profile id, or an ARN of one).
pub fn is_known(id: &str) -> bool {
    lookup(id).is_some()
}

/// Where `id` stands in `region`; with no region, whether it is known at all.
pub fn availability(id: &str, region: Option<&str>) -> Availability {
    let Some((model, regions)) = lookup(id) else {
        return Availability::Unknown;
    };
    let Some(region) = region else {
        return Availability::Offered;
    };
    let here = mask_of(region);
    if regions & here != 0 {
        return Availability::Offered;
    }
    let name = resource(id);
    let is_base = name == model.id || model.aliases.contains(&name);
    let profile_here = model.profiles.iter().any(|(_, r)| r & here != 0);
    if is_base && profile_here {
        Availability::ProfileOnly
    } else {
        Availability::NotInRegion
    }
}

/// The regions serving `id`, by name (empty for an unknown id).
pub fn regions_of(id: &str) -> Vec<&'static str> {
    let mask = lookup(id).map_or(0, |(_, regions)| regions);
    REGIONS
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, region)| *region)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model_id::base_model_id;

    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    #[test]
    fn base_ids_aliases_profiles_and_arns_are_known() {
        for id in [
            HAIKU,
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic.claude-haiku-4-5",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-lite-v1:0",
        ] {
            assert!(is_known(id), "{id}");
        }
        for id in [
            "acme.nothing-v1",
            "anthropic.claude-opus-4-9-v1:0",
            "us.anthropic.claude-3-haiku",
            "apac.anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert!(!is_known(id), "{id}");
        }
    }

    #[test]
    fn regions_decide_what_is_served() {
        use Availability::*;
        assert_eq!(availability(HAIKU, Some("us-east-1")), Offered);
        assert_eq!(availability(HAIKU, None), Offered);
        assert_eq!(availability("acme.nothing-v1", None), Unknown);
        // A geographic profile serves its own geography only.
        let eu = "eu.anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(availability(eu, Some("eu-west-1")), Offered);
        assert_eq!(availability(eu, Some("us-east-1")), NotInRegion);
        // Sonnet 4.5 has no in-region offer: its base id points at a profile.
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(availability(sonnet, Some("us-east-1")), ProfileOnly);
        assert_eq!(
            availability(&format!("us.{sonnet}"), Some("us-east-1")),
            Offered
        );
        // Llama 3.1 8B is served in-region in us-west-2 only; us-east-1 has its us.
        // profile, Europe has neither.
        let llama = "meta.llama3-1-8b-instruct-v1:0";
        assert_eq!(regions_of(llama), ["us-west-2"]);
        assert_eq!(availability(llama, Some("us-west-2")), Offered);
        assert_eq!(availability(llama, Some("us-east-1")), ProfileOnly);
        assert_eq!(availability(llama, Some("eu-west-1")), NotInRegion);
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut ids = Vec::new();
        for model in all() {
            ids.push(model.id);
            ids.extend(model.aliases);
            ids.extend(model.profiles.iter().map(|(id, _)| *id));
            for (profile, _) in model.profiles {
                assert_eq!(base_model_id(profile), model.id, "{profile}");
            }
            let all_regions = model
                .profiles
                .iter()
                .fold(model.in_region, |mask, (_, r)| mask | r);
            assert_ne!(all_regions, 0, "{} is served somewhere", model.id);
            assert_eq!(all_regions >> REGIONS.len(), 0, "{}", model.id);
        }
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "every id names one model");
    }
}

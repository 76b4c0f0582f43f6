//! `Catalog`: all offers, indexed by accelerator shape and ordered by price, with the queries the
//! optimizer and `show-gpus` use. Pure data: loading from a directory is the only IO.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;

use crate::load::parse_offers;
use crate::rows::LoadReport;
use crate::{Amount, CatalogError, Offer, canonical_accelerator, closest_accelerator};

/// File names in a catalog directory that are not offer lists.
const NOT_OFFER_FILES: &[&str] = &["accelerators.csv", "egress.csv", "images.csv"];

/// Which accelerators a query wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AcceleratorFilter {
    /// Any offer, with or without accelerators.
    #[default]
    Any,
    /// Only offers without accelerators.
    None,
    /// Offers with this canonical accelerator; with `count`, exactly that many.
    Named {
        /// Canonical accelerator name.
        name: String,
        /// Exact count, or any count.
        count: Option<f64>,
    },
}

/// A catalog query. Empty fields match everything.
///
/// ```
/// use skyplan_catalog::{Catalog, OfferQuery};
/// let csv = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\n\
///            g6.xlarge,L4,1,4,16,0.8048,0.30,us-east-1\n\
///            m6i.large,,,2,8,0.096,0.04,us-east-1\n";
/// let catalog = Catalog::from_csv("aws", "aws.csv", csv.as_bytes()).unwrap();
/// let query = OfferQuery::accelerator("L4", Some(1.0));
/// let offers = catalog.query(&query);
/// assert_eq!(offers[0].instance_type, "g6.xlarge");
/// assert_eq!(offers[0].price.unwrap().to_string(), "0.8048");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferQuery {
    /// Accelerators wanted.
    pub accelerator: AcceleratorFilter,
    /// vCPUs (`N` or `N+`).
    pub cpus: Option<Amount>,
    /// Memory in GiB (`N` or `N+`).
    pub memory: Option<Amount>,
    /// Cloud, case-insensitive.
    pub cloud: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
    /// Spot market (only offers with a spot price; ordered by it) instead of on-demand.
    pub spot: bool,
    /// Highest acceptable $/hour in the chosen market.
    pub max_price: Option<Decimal>,
}

impl OfferQuery {
    /// A query for an accelerator by canonical name, optionally an exact count.
    pub fn accelerator(name: &str, count: Option<f64>) -> Self {
        OfferQuery {
            accelerator: AcceleratorFilter::Named {
                name: name.to_string(),
                count,
            },
            ..Default::default()
        }
    }

    /// Whether `offer` satisfies everything but the accelerator filter's index lookup.
    pub fn matches(&self, offer: &Offer) -> bool {
        let accelerator_ok = match &self.accelerator {
            AcceleratorFilter::Any => true,
            AcceleratorFilter::None => offer.accelerator.is_none(),
            AcceleratorFilter::Named { name, count } => {
                offer.accelerator.as_deref() == Some(name.as_str())
                    && count.is_none_or(|c| c == offer.accelerator_count)
            }
        };
        let Some(price) = offer.price_for(self.spot) else {
            return false;
        };
        accelerator_ok
            && self.max_price.is_none_or(|max| price <= max)
            && self
                .cpus
                .is_none_or(|want| offer.vcpus.is_some_and(|have| want.admits(have)))
            && self
                .memory
                .is_none_or(|want| offer.memory_gib.is_some_and(|have| want.admits(have)))
            && offer.is_at(
                self.cloud.as_deref(),
                self.region.as_deref(),
                self.zone.as_deref(),
                self.instance_type.as_deref(),
            )
    }
}

/// Per-accelerator summary for `show-gpus` without a name.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceleratorSummary<'a> {
    /// Canonical name.
    pub name: String,
    /// Counts on offer, ascending.
    pub counts: Vec<f64>,
    /// Clouds offering it, sorted.
    pub clouds: Vec<String>,
    /// The cheapest on-demand offer.
    pub cheapest: Option<&'a Offer>,
    /// The cheapest spot offer.
    pub cheapest_spot: Option<&'a Offer>,
}

/// Offer indices for one (accelerator, count) shape, ordered by price in each market.
#[derive(Debug, Clone, Default)]
struct ShapeIndex {
    on_demand: Vec<u32>,
    spot: Vec<u32>,
}

type ShapeKey = (Option<String>, u64);

/// All offers, indexed for fast queries.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub(crate) offers: Vec<Offer>,
    shapes: HashMap<ShapeKey, ShapeIndex>,
    /// Accelerator name -> the counts it comes in.
    counts_by_name: BTreeMap<String, Vec<f64>>,
    report: LoadReport,
    sources: Vec<String>,
}

/// The deterministic order of offers within a market: price, then cloud, region, zone, instance type.
pub fn compare_offers(a: &Offer, b: &Offer, spot: bool) -> Ordering {
    a.price_for(spot)
        .cmp(&b.price_for(spot))
        .then_with(|| a.cloud.cmp(&b.cloud))
        .then_with(|| a.region.cmp(&b.region))
        .then_with(|| a.zone.cmp(&b.zone))
        .then_with(|| a.instance_type.cmp(&b.instance_type))
        .then_with(|| a.accelerator.cmp(&b.accelerator))
        .then_with(|| a.accelerator_count.total_cmp(&b.accelerator_count))
}

impl Catalog {
    /// A catalog from offers built elsewhere (e.g. live Kubernetes capacity, tests).
    pub fn from_offers(offers: Vec<Offer>) -> Self {
        let mut catalog = Catalog {
            offers,
            ..Default::default()
        };
        catalog.reindex();
        catalog
    }

    /// Parses one SkyPilot-format CSV (`file` names it in errors) as offers of `cloud`.
    pub fn from_csv(cloud: &str, file: &str, bytes: &[u8]) -> Result<Self, CatalogError> {
        Self::from_sources([(cloud, file, bytes)])
    }

    /// Parses several CSVs given as `(cloud, file name, contents)`.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>,
    ) -> Result<Self, CatalogError> {
        let mut catalog = Catalog::default();
        for (cloud, file, bytes) in sources {
            let (offers, report) = parse_offers(file, &cloud.to_ascii_lowercase(), bytes)?;
            catalog.offers.extend(offers);
            catalog.report.absorb(report);
            catalog.sources.push(file.to_string());
        }
        catalog.reindex();
        Ok(catalog)
    }

    /// Loads every offer file in `dir`: `CLOUD.csv` or `CLOUD/vms.csv` (SkyPilot's layout).
    /// `accelerators.csv`, `egress.csv` and `*images.csv` are not offer files and are skipped.
    pub fn load_dir(dir: &Path) -> Result<Self, CatalogError> {
        let files = catalog_files(dir)?;
        if files.is_empty() {
            return Err(CatalogError::NoCatalogFiles {
                dir: dir.to_path_buf(),
            });
        }
        let mut contents = Vec::with_capacity(files.len());
        for (cloud, path) in files {
            let bytes = std::fs::read(&path).map_err(|source| CatalogError::Io {
                path: path.clone(),
                source,
            })?;
            contents.push((cloud, path.display().to_string(), bytes));
        }
        Self::from_sources(
            contents
                .iter()
                .map(|(c, f, b)| (c.as_str(), f.as_str(), b.as_slice())),
        )
    }

    /// Adds offers (e.g. live cluster capacity) and rebuilds the indices.
    pub fn extend(&mut self, offers: impl IntoIterator<Item = Offer>) {
        self.offers.extend(offers);
        self.reindex();
    }

    pub(crate) fn reindex(&mut self) {
        self.offers.sort_by(|a, b| compare_offers(a, b, false));
        self.shapes.clear();
        self.counts_by_name.clear();
        for (index, offer) in self.offers.iter().enumerate() {
            let key = (offer.accelerator.clone(), offer.accelerator_count.to_bits());
            let shape = self.shapes.entry(key).or_default();
            let index = index as u32;
            if offer.price.is_some() {
                shape.on_demand.push(index);
            }
            if offer.spot_price.is_some() {
                shape.spot.push(index);
            }
            if let Some(name) = &offer.accelerator {
                let counts = self.counts_by_name.entry(name.clone()).or_default();
                if !counts.contains(&offer.accelerator_count) {
                    counts.push(offer.accelerator_count);
                }
            }
        }
        let offers = &self.offers;
        for shape in self.shapes.values_mut() {
            // on_demand is already in order (offers are sorted by on-demand price).
            shape
                .spot
                .sort_by(|&a, &b| compare_offers(&offers[a as usize], &offers[b as usize], true));
        }
        for counts in self.counts_by_name.values_mut() {
            counts.sort_by(f64::total_cmp);
        }
    }

    /// Every offer, ordered by on-demand price (offers without one last).
    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }

    /// What loading collapsed, resolved or left out.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The files this catalog was loaded from.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The clouds with offers in this catalog, sorted.
    pub fn clouds(&self) -> Vec<&str> {
        let clouds: BTreeSet<&str> = self.offers.iter().map(|o| o.cloud.as_str()).collect();
        clouds.into_iter().collect()
    }

    /// Canonical accelerator names on offer, sorted.
    pub fn accelerator_names(&self) -> impl Iterator<Item = &str> {
        self.counts_by_name.keys().map(String::as_str)
    }

    /// Resolves a user-given accelerator name or alias to its canonical name, with a "did you
    /// mean" hint when it is unknown.
    pub fn resolve_accelerator(&self, name: &str) -> Result<String, CatalogError> {
        let extra: Vec<&str> = self.accelerator_names().collect();
        canonical_accelerator(name, &extra).ok_or_else(|| CatalogError::UnknownAccelerator {
            // A name of any length is shown cut short, with its length.
            name: match name.char_indices().nth(40) {
                Some((cut, _)) => format!("{}... ({} characters)", &name[..cut], name.chars().count()),
                None => name.to_string(),
            },
            hint: closest_accelerator(
                name,
                extra
                    .iter()
                    .copied()
                    .chain(crate::KNOWN_ACCELERATORS.iter().copied()),
            ),
        })
    }

    /// Offers satisfying `query`, cheapest first in the query's market.
    pub fn query(&self, query: &OfferQuery) -> Vec<&Offer> {
        fn market(shape: &ShapeIndex, spot: bool) -> &[u32] {
            if spot { &shape.spot } else { &shape.on_demand }
        }
        let pick = |shape: &ShapeIndex| -> Vec<&Offer> {
            market(shape, query.spot)
                .iter()
                .map(|&i| &self.offers[i as usize])
                .filter(|o| query.matches(o))
                .collect()
        };
        match &query.accelerator {
            AcceleratorFilter::Named {
                name,
                count: Some(count),
            } => self
                .shapes
                .get(&(Some(name.clone()), count.to_bits()))
                .map(pick)
                .unwrap_or_default(),
            AcceleratorFilter::None => self
                .shapes
                .get(&(None, 0f64.to_bits()))
                .map(pick)
                .unwrap_or_default(),
            AcceleratorFilter::Named { name, count: None } => {
                let mut found: Vec<&Offer> = self
                    .counts_by_name
                    .get(name)
                    .into_iter()
                    .flatten()
                    .filter_map(|count| self.shapes.get(&(Some(name.clone()), count.to_bits())))
                    .flat_map(pick)
                    .collect();
                found.sort_by(|a, b| compare_offers(a, b, query.spot));
                found
            }
            AcceleratorFilter::Any => {
                let mut found: Vec<&Offer> = self.offers.iter().filter(|o| query.matches(o)).collect();
                if query.spot {
                    found.sort_by(|a, b| compare_offers(a, b, true));
                }
                found
            }
        }
    }

    /// One summary per accelerator, sorted by name, for offers matching `filter` (its
    /// accelerator field is ignored).
    pub fn accelerator_summaries(&self, filter: &OfferQuery) -> Vec<AcceleratorSummary<'_>> {
        let mut summaries = Vec::new();
        for (name, counts) in &self.counts_by_name {
            let mut query = filter.clone();
            query.accelerator = AcceleratorFilter::Named {
                name: name.clone(),
                count: None,
            };
            query.spot = false;
            let on_demand = self.query(&query);
            query.spot = true;
            let spot = self.query(&query);
            if on_demand.is_empty() && spot.is_empty() {
                continue;
            }
            let clouds: BTreeSet<String> = on_demand
                .iter()
                .chain(spot.iter())
                .map(|o| o.cloud.clone())
                .collect();
            let offered: BTreeSet<u64> = on_demand
                .iter()
                .chain(spot.iter())
                .map(|o| o.accelerator_count.to_bits())
                .collect();
            summaries.push(AcceleratorSummary {
                name: name.clone(),
                counts: counts
                    .iter()
                    .copied()
                    .filter(|c| offered.contains(&c.to_bits()))
                    .collect(),
                clouds: clouds.into_iter().collect(),
                cheapest: on_demand.first().copied(),
                cheapest_spot: spot.first().copied(),
            });
        }
        summaries
    }
}

/// `(cloud, path)` for each offer file in `dir`, sorted by cloud.
fn catalog_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            let nested = path.join("vms.csv");
            if nested.is_file() {
                files.push((name.to_ascii_lowercase(), nested));
            }
        } else if let Some(stem) = name.strip_suffix(".csv") {
            let skipped = NOT_OFFER_FILES.contains(&name.as_str()) || name.ends_with("images.csv");
            if !skipped {
                files.push((stem.to_ascii_lowercase(), path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Parses `NAME[:COUNT]` (e.g. `L4:1`, `H100`), returning the name as given and the count.
///
/// ```
/// use skyplan_catalog::parse_accelerator_request;
/// assert_eq!(parse_accelerator_request("H100:8").unwrap(), ("H100".to_string(), Some(8.0)));
/// assert_eq!(parse_accelerator_request("L4").unwrap(), ("L4".to_string(), None));
/// assert!(parse_accelerator_request("L4:x").is_err());
/// assert!(parse_accelerator_request("L4:0").is_err());
/// ```
pub fn parse_accelerator_request(text: &str) -> Result<(String, Option<f64>), CatalogError> {
    let bad = |expected| CatalogError::InvalidQuery {
        what: "accelerator request",
        value: text.to_string(),
        expected,
    };
    let (name, count) = match text.trim().rsplit_once(':') {
        Some((name, count)) => {
            let count = count
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("NAME:COUNT with a positive number, e.g. `L4:1`"))?;
            if !(count.is_finite() && count > 0.0) {
                return Err(bad("NAME:COUNT with a positive number, e.g. `L4:1`"));
            }
            (name.trim(), Some(count))
        }
        None => (text.trim(), None),
    };
    if name.is_empty() {
        return Err(bad("an accelerator name, e.g. `L4` or `H100:8`"));
    }
    Ok((name.to_string(), count))
}
